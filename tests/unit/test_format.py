"""The frame layout is the one storage/FORMAT.md documents, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

from storage.errors import FrameDecodeError
from storage.format import (
    FRAME_PAYLOAD_MARKER,
    FRAME_PAYLOAD_MARKER_V1,
    Op,
    check_frame,
    decode_group,
    decode_payload,
    encode_frame,
    encode_segment_header,
)

FORMAT_MD = Path(__file__).resolve().parents[2] / "storage" / "FORMAT.md"


def test_worked_example_in_format_md_is_what_the_encoder_writes() -> None:
    frame = encode_frame(7, [(Op.PUT, b"a", b"hi"), (Op.DELETE, b"b", None)],
                         [1_700_000_030_000, None], 1_700_000_000_000)
    documented = FORMAT_MD.read_text()
    example = documented.split("### Worked example", 1)[1].split("```")[1]
    hex_column = " ".join(line[:32].strip() for line in example.strip().splitlines())
    assert frame.hex(" ") == hex_column
    header = encode_segment_header(7).hex(" ")
    assert header == (
        "77 61 6c 6b 76 57 41 4c 02 00 00 00 07 00 00 00 00 00 00 00 fe cf 04 07"
    )
    assert header.replace(" ", "") in documented.replace(" ", "").replace("|", "")
    assert frame[8] == FRAME_PAYLOAD_MARKER
    assert check_frame(frame, 0) == 39
    assert decode_payload(frame[8:]) == (7, [(1, b"a", b"hi"), (2, b"b", None)])
    assert decode_group(frame[8:])[4:] == ([1_700_000_030_000, None], 1_700_000_000_000)


def test_a_version_1_payload_still_decodes() -> None:
    payload = msgpack.packb([7, bytes([Op.PUT]), [b"a"], [b"hi"]], use_bin_type=True)
    assert payload[0] == FRAME_PAYLOAD_MARKER_V1
    assert decode_group(payload) == (7, bytes([Op.PUT]), [b"a"], [b"hi"], None, 0)


@pytest.mark.parametrize(("deadlines", "ops"), [
    ([5], [(Op.DELETE, b"k", None)]),
    ([-1], [(Op.PUT, b"k", b"v")]),
    ([5, 6], [(Op.PUT, b"k", b"v")]),
    (["soon"], [(Op.EXPIRE, b"k", None)]),
])
def test_a_deadline_a_record_cannot_carry_is_refused(
        deadlines: list[Any], ops: list[tuple[int, bytes, bytes | None]]) -> None:
    frame = encode_frame(1, ops, deadlines, 1)
    with pytest.raises(FrameDecodeError, match="deadline"):
        decode_group(frame[8:])


def test_all_put_group_round_trips_column_wise() -> None:
    keys = [b"k%d" % i for i in range(100)]
    values = [b"v%d" % i for i in range(100)]
    frame = encode_frame(1, [(Op.PUT, k, v) for k, v in zip(keys, values, strict=True)])
    assert decode_group(frame[8:])[:4] == (1, bytes([Op.PUT]) * 100, keys, values)


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([(9, b"k", b"v")], "unknown op"),
        ([(Op.PUT, b"k", None)], "non-bytes value"),
        ([(Op.DELETE, b"k", b"v"), (Op.PUT, b"j", b"w")], "carries a value"),
        ([(Op.CLEAR, b"k", None), (Op.PUT, b"j", b"w")], "carries a value or key"),
    ],
)
def test_checksummed_frame_with_an_invalid_group_is_refused(
    records: list[tuple[int, bytes, bytes | None]], reason: str
) -> None:
    # A CRC only proves the bytes are what was written; the shape is checked too.
    frame = encode_frame(1, records)
    with pytest.raises(FrameDecodeError, match=reason):
        decode_group(frame[8:])
