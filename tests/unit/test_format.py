"""The frame layout is the one storage/FORMAT.md documents, byte for byte."""

from __future__ import annotations

import pytest

from storage.errors import FrameDecodeError
from storage.format import (
    FRAME_PAYLOAD_MARKER,
    Op,
    check_frame,
    decode_group,
    decode_payload,
    encode_frame,
    encode_segment_header,
)


def test_worked_example_in_format_md_is_what_the_encoder_writes() -> None:
    frame = encode_frame(7, [(Op.PUT, b"a", b"hi"), (Op.DELETE, b"b", None)])
    assert frame.hex(" ") == (
        "13 00 00 00 54 b3 89 32 94 07 c4 02 01 02 92 c4 01 61 c4 01 62 92 c4 02 68 69 c0"
    )
    assert encode_segment_header(7).hex(" ") == (
        "77 61 6c 6b 76 57 41 4c 01 00 00 00 07 00 00 00 00 00 00 00 ae b3 96 54"
    )
    assert frame[8] == FRAME_PAYLOAD_MARKER
    assert check_frame(frame, 0) == 19
    assert decode_payload(frame[8:]) == (7, [(1, b"a", b"hi"), (2, b"b", None)])


def test_all_put_group_round_trips_column_wise() -> None:
    keys = [b"k%d" % i for i in range(100)]
    values = [b"v%d" % i for i in range(100)]
    frame = encode_frame(1, [(Op.PUT, k, v) for k, v in zip(keys, values, strict=True)])
    assert decode_group(frame[8:]) == (1, bytes([Op.PUT]) * 100, keys, values)


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
