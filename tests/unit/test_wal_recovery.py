"""WAL frame reading and recovery against damaged files on the real filesystem.

Each test copies a directory the engine wrote (one record per frame), damages the
copy with plain open/seek/write/truncate, reopens it and checks the exact state,
the recovery report and the files left behind.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import CorruptionError, Engine, Op, Outcome, RecoveryMode
from storage.format import FRAME_PAYLOAD_MARKER, encode_frame, encode_segment_header
from storage.recovery import Cut
from storage.wal.reader import EndKind, SegmentReader, valid_frame_after
from tests.unit.storage_util import (
    History,
    Write,
    append,
    flip_bit,
    frame_spans,
    opened,
    options,
    read,
    record_history,
    segment_paths,
    states_of,
    tree_bytes,
    truncate,
    wal_dir,
    write_at,
)

SINGLE = options(segment_bytes=1 << 16)
"""One segment for the whole history (64 KiB preallocation step)."""
MULTI = options(segment_bytes=4096)
"""A new segment every ~23 frames."""

SINGLE_WRITES: list[Write] = [
    (Op.PUT, b"a", b"alpha"),
    (Op.PUT, b"b", b"bravo"),
    (Op.PUT, b"c", b"charlie"),
    (Op.DELETE, b"b", None),
    (Op.PUT, b"d", b"\x00\xffbinary\x00"),
    (Op.CLEAR, b"", None),
    (Op.PUT, b"e", b"echo"),
    (Op.PUT, b"a", b"alpha-2"),
    (Op.PUT, b"f", b"foxtrot"),
    (Op.DELETE, b"e", None),
    (Op.PUT, b"g", b"golf"),
    (Op.PUT, b"h", b"the last record's value"),
]
N = len(SINGLE_WRITES)
_op, _key, _value = SINGLE_WRITES[-1]
LAST_FRAME = encode_frame(N, [(int(_op), _key, _value)])
"""The bytes of the last frame (encoding is deterministic; the fixture checks it)."""


def _multi_writes() -> list[Write]:
    writes: list[Write] = []
    for i in range(80):
        if i == 41:
            writes.append((Op.CLEAR, b"", None))
        elif i % 7 == 6:
            writes.append((Op.DELETE, b"k%02d" % ((i - 3) % 25), None))
        else:
            writes.append((Op.PUT, b"k%02d" % (i % 25), (b"v%03d-" % i) * 30))
    return writes


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = str(tmp_path_factory.mktemp("single") / "db")
    history = record_history(root, SINGLE_WRITES, SINGLE)
    assert len(history.segments) == 1
    name = history.segments[0]
    start, end = history.spans[name][-1]
    assert read(os.path.join(wal_dir(root), name))[start:end] == LAST_FRAME
    return history


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = str(tmp_path_factory.mktemp("multi") / "db")
    history = record_history(root, _multi_writes(), MULTI)
    assert len(history.segments) >= 3
    assert all(len(history.spans[n]) >= 3 for n in history.segments)
    return history


def seg(root: str, name: str) -> str:
    return os.path.join(wal_dir(root), name)


def last_frame_of(history: History) -> tuple[str, int, int]:
    name = history.segments[-1]
    start, end = history.spans[name][-1]
    return name, start, end


def broken_files(root: str) -> list[str]:
    return sorted(n for n in os.listdir(wal_dir(root)) if n.endswith(".broken"))


# -- torn tails ------------------------------------------------------------------------


@pytest.mark.parametrize("kept", range(len(LAST_FRAME)))
def test_torn_trailing_frame_is_cut(single: History, tmp_path: Path, kept: int) -> None:
    root = single.copy(str(tmp_path / "db"))
    name, start, _end = last_frame_of(single)
    path = seg(root, name)
    truncate(path, start + kept)

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N - 1]
        assert engine.last_lsn == N - 1
        if kept == 0:
            # The file ends exactly after a frame: a clean end, nothing to cut.
            assert engine.recovery_report.cuts == []
            assert broken_files(root) == []
        else:
            reason = (
                "torn tail: short frame header"
                if kept < 8
                else "torn tail: frame runs past end of file"
            )
            assert engine.recovery_report.cuts == [Cut(path, start, kept, reason, path + ".broken")]
            assert read(path + ".broken") == LAST_FRAME[:kept]
        assert os.path.getsize(path) == start
        assert engine.write(Op.PUT, b"after", b"the cut") is Outcome.OK

    with opened(root, SINGLE) as engine:
        assert engine.table == {**single.states[N - 1], b"after": b"the cut"}
        assert engine.recovery_report.cuts == []


@pytest.mark.parametrize("zeros", [1, 7, 8, 9, 4096, 1 << 16])
def test_zero_fill_after_last_frame_is_unused_space(
    single: History, tmp_path: Path, zeros: int
) -> None:
    root = single.copy(str(tmp_path / "db"))
    name, _start, end = last_frame_of(single)
    path = seg(root, name)
    append(path, bytes(zeros))

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N]
        assert engine.recovery_report.cuts == [
            Cut(path, end, zeros, "unused preallocated space", None)
        ]
    assert broken_files(root) == []
    assert os.path.getsize(path) == end


def test_crash_leaves_preallocated_zeros_that_recovery_trims(tmp_path: Path) -> None:
    live = str(tmp_path / "live")
    crashed = str(tmp_path / "crashed")
    with opened(live, SINGLE) as engine:
        for op, key, value in SINGLE_WRITES:
            assert engine.write(op, key, value) is Outcome.OK
        # A copy taken while the engine runs is what a SIGKILL would leave behind.
        shutil.copytree(live, crashed)
    [path] = segment_paths(crashed)
    data = read(path)
    end = frame_spans(data)[-1][1]
    assert len(data) > end and data[end:] == bytes(len(data) - end)

    with opened(crashed, SINGLE) as engine:
        assert engine.table == states_of(SINGLE_WRITES)[-1]
        assert engine.recovery_report.cuts == [
            Cut(path, end, len(data) - end, "unused preallocated space", None)
        ]
    assert broken_files(crashed) == []


@pytest.mark.parametrize("seed", range(6))
def test_garbage_after_last_frame_is_cut_and_kept(
    single: History, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    garbage = rng.randbytes(rng.choice([1, 5, 13, 200, 3000]))
    if seed % 2:
        garbage = bytes(rng.randrange(1, 64)) + garbage  # zeros first, then junk
    assert garbage.count(0) != len(garbage)
    root = single.copy(str(tmp_path / "db"))
    name, _start, end = last_frame_of(single)
    path = seg(root, name)
    append(path, garbage)

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N]
        [cut] = engine.recovery_report.cuts
        assert (cut.path, cut.offset, cut.length, cut.kept_in) == (
            path,
            end,
            len(garbage),
            path + ".broken",
        )
        assert cut.reason.startswith("torn tail: ")
    assert read(path + ".broken") == garbage
    assert os.path.getsize(path) == end


@pytest.mark.parametrize("index", range(len(LAST_FRAME)))
def test_bit_flip_in_last_frame_drops_it_as_torn_tail(
    single: History, tmp_path: Path, index: int
) -> None:
    root = single.copy(str(tmp_path / "db"))
    name, start, end = last_frame_of(single)
    path = seg(root, name)
    flip_bit(path, start + index, index % 8)
    damaged = read(path)[start:end]

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N - 1]
        [cut] = engine.recovery_report.cuts
        assert (cut.path, cut.offset, cut.length, cut.kept_in) == (
            path,
            start,
            end - start,
            path + ".broken",
        )
        assert cut.reason.startswith("torn tail: ")
    assert read(path + ".broken") == damaged


def test_torn_header_of_new_newest_segment_is_removed(single: History, tmp_path: Path) -> None:
    # A crash while creating the next segment: its header never became durable.
    root = single.copy(str(tmp_path / "db"))
    path = seg(root, f"{N + 1:016x}.wal")
    torn = encode_segment_header(N + 1)[:10]
    with open(path, "wb") as f:
        f.write(torn)

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N]
        assert engine.recovery_report.cuts == [
            Cut(path, 0, len(torn), "torn segment header", path + ".broken")
        ]
        assert engine.write(Op.PUT, b"next", b"1") is Outcome.OK
    assert read(path + ".broken") == torn
    with opened(root, SINGLE) as engine:
        assert engine.table == {**single.states[N], b"next": b"1"}


# -- damage before the tail --------------------------------------------------------------

FramePart = Callable[[int, int], int]
"""(frame offset, frame end) -> byte to flip."""

PARTS: dict[str, FramePart] = {
    "length-low": lambda s, e: s,
    "length-high": lambda s, e: s + 3,
    "crc": lambda s, e: s + 5,
    "payload-marker": lambda s, e: s + 8,
    "payload-middle": lambda s, e: (s + 8 + e) // 2,
    "last-byte": lambda s, e: e - 1,
}


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("frame", [0, 4, N - 2])
def test_checksum_mismatch_before_tail_refuses_to_start(
    single: History, tmp_path: Path, frame: int, part: str
) -> None:
    root = single.copy(str(tmp_path / "db"))
    name = single.segments[0]
    path = seg(root, name)
    start, end = single.spans[name][frame]
    flip_bit(path, PARTS[part](start, end), 7 if part == "length-high" else 2)
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, SINGLE)
    assert (info.value.path, info.value.offset) == (path, start)
    assert tree_bytes(root) == before
    # The lock was released: the refusal is repeatable, with the same answer.
    with pytest.raises(CorruptionError) as again:
        Engine.open(root, SINGLE)
    assert (again.value.path, again.value.offset) == (path, start)


@pytest.mark.parametrize("part", PARTS)
def test_bit_flip_in_older_segment_refuses_to_start(
    multi: History, tmp_path: Path, part: str
) -> None:
    root = multi.copy(str(tmp_path / "db"))
    name = multi.segments[0]
    path = seg(root, name)
    # The older segment's last frame: nothing after it in that file, yet not a tail.
    start, end = multi.spans[name][-1]
    flip_bit(path, PARTS[part](start, end), 2)
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, MULTI)
    assert (info.value.path, info.value.offset) == (path, start)
    assert tree_bytes(root) == before


def test_garbage_after_older_segment_refuses_to_start(multi: History, tmp_path: Path) -> None:
    root = multi.copy(str(tmp_path / "db"))
    name = multi.segments[0]
    path = seg(root, name)
    append(path, b"\x07junk after the last frame")
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, MULTI)
    assert (info.value.path, info.value.offset) == (path, multi.spans[name][-1][1])
    assert tree_bytes(root) == before


@pytest.mark.parametrize("which", [0, -1])
def test_damaged_segment_header_refuses_to_start(
    multi: History, tmp_path: Path, which: int
) -> None:
    root = multi.copy(str(tmp_path / "db"))
    path = seg(root, multi.segments[which])
    flip_bit(path, 12)  # inside first_lsn
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, MULTI)
    assert (info.value.path, info.value.offset) == (path, 0)
    assert tree_bytes(root) == before


# LSN continuity: each damage function returns (file named in the error, offset).
Damage = Callable[[History, str], tuple[str, int]]


def delete_middle_segment(h: History, root: str) -> tuple[str, int]:
    os.unlink(seg(root, h.segments[1]))
    return seg(root, h.segments[2]), 0


def delete_first_segment(h: History, root: str) -> tuple[str, int]:
    os.unlink(seg(root, h.segments[0]))
    return seg(root, h.segments[1]), 0


def _splice(path: str, start: int, end: int, insert: bytes = b"") -> None:
    data = read(path)
    with open(path, "wb") as f:
        f.write(data[:start] + insert + data[end:])


def splice_frame_from_middle_segment(h: History, root: str) -> tuple[str, int]:
    name = h.segments[1]
    start, end = h.spans[name][2]
    _splice(seg(root, name), start, end)
    return seg(root, name), start


def splice_frame_from_newest_segment(h: History, root: str) -> tuple[str, int]:
    name = h.segments[-1]
    start, end = h.spans[name][1]
    _splice(seg(root, name), start, end)
    return seg(root, name), start


def splice_last_frame_of_older_segment(h: History, root: str) -> tuple[str, int]:
    name = h.segments[0]
    start, end = h.spans[name][-1]
    _splice(seg(root, name), start, end)
    return seg(root, h.segments[1]), 0


def duplicate_a_frame(h: History, root: str) -> tuple[str, int]:
    name = h.segments[1]
    start, end = h.spans[name][1]
    path = seg(root, name)
    _splice(path, end, end, read(path)[start:end])
    return path, end


def rename_segment(h: History, root: str) -> tuple[str, int]:
    # Intact header and frames, but the name (one LSN later) does not match the header.
    name = h.segments[1]
    moved = seg(root, f"{int(name[:16], 16) + 1:016x}.wal")
    os.rename(seg(root, name), moved)
    return moved, 0


GAPS: dict[str, Damage] = {
    "delete-middle-segment": delete_middle_segment,
    "delete-first-segment": delete_first_segment,
    "splice-frame-middle-segment": splice_frame_from_middle_segment,
    "splice-frame-newest-segment": splice_frame_from_newest_segment,
    "splice-last-frame-older-segment": splice_last_frame_of_older_segment,
    "duplicate-frame": duplicate_a_frame,
    "renamed-segment": rename_segment,
}


@pytest.mark.parametrize("damage", GAPS)
def test_lsn_gap_refuses_to_start(multi: History, tmp_path: Path, damage: str) -> None:
    root = multi.copy(str(tmp_path / "db"))
    path, offset = GAPS[damage](multi, root)
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, MULTI)
    assert (info.value.path, info.value.offset) == (path, offset)
    assert tree_bytes(root) == before


# -- point-in-time recovery ------------------------------------------------------------


@pytest.mark.parametrize("frame", [0, 3])
def test_point_in_time_keeps_prefix_before_damaged_frame(
    multi: History, tmp_path: Path, frame: int
) -> None:
    root = multi.copy(str(tmp_path / "db"))
    name = multi.segments[1]
    path = seg(root, name)
    start, _end = multi.spans[name][frame]
    original = {n: read(seg(root, n)) for n in multi.segments}
    flip_bit(path, start + 8, 3)
    damaged = read(path)
    lsn = multi.frame_lsn(name, frame)
    pit = options(segment_bytes=4096, recovery_mode=RecoveryMode.POINT_IN_TIME)

    with opened(root, pit) as engine:
        report = engine.recovery_report
        assert engine.table == multi.states[lsn - 1]
        assert engine.last_lsn == lsn - 1
        assert len(report.dropped) == len(multi.segments) - 1
        for later in multi.segments[2:]:
            assert not os.path.exists(seg(root, later))
            assert read(seg(root, later) + ".broken") == original[later]
        if frame == 0:
            # Nothing valid in the damaged segment: set aside whole. The fresh segment
            # the engine opens takes the same name (the same first LSN).
            assert read(path + ".broken") == damaged
            assert read(path) == encode_segment_header(lsn)
            assert report.cuts == []
        else:
            assert read(path) == original[name][:start]
            assert read(path + ".broken") == damaged[start:]
            [cut] = report.cuts
            assert (cut.path, cut.offset, cut.kept_in) == (path, start, path + ".broken")
            assert cut.reason.startswith("point-in-time: ")
        assert engine.write(Op.PUT, b"after", b"pit") is Outcome.OK

    # What was kept is a consistent log again: strict mode accepts it.
    with opened(root, MULTI) as engine:
        assert engine.table == {**multi.states[lsn - 1], b"after": b"pit"}
        assert engine.recovery_report.dropped == []


def test_point_in_time_stops_at_missing_segment(multi: History, tmp_path: Path) -> None:
    root = multi.copy(str(tmp_path / "db"))
    os.unlink(seg(root, multi.segments[1]))
    pit = options(segment_bytes=4096, recovery_mode=RecoveryMode.POINT_IN_TIME)

    with opened(root, pit) as engine:
        lsn = multi.frame_lsn(multi.segments[1], 0)
        assert engine.table == multi.states[lsn - 1]
        assert engine.recovery_report.dropped != []
    assert segment_paths(root)[0] == seg(root, multi.segments[0])
    for later in multi.segments[2:]:
        assert os.path.exists(seg(root, later) + ".broken")


@pytest.mark.parametrize("mode", list(RecoveryMode))
def test_wal_not_reaching_lsn_1_without_snapshot_refuses_in_every_mode(
    multi: History, tmp_path: Path, mode: RecoveryMode
) -> None:
    # With no snapshot, the first segment is the base of the whole history: without
    # it no valid prefix exists, and starting empty would silently lose everything.
    root = multi.copy(str(tmp_path / "db"))
    os.unlink(seg(root, multi.segments[0]))
    before = tree_bytes(root)

    with pytest.raises(CorruptionError) as info:
        Engine.open(root, options(segment_bytes=4096, recovery_mode=mode))
    assert info.value.path == seg(root, multi.segments[1])
    assert info.value.offset == 0
    assert "does not reach back to LSN 1" in info.value.reason
    assert tree_bytes(root) == before


# -- scanning random tails ---------------------------------------------------------------

_FRAMES = [encode_frame(i + 1, [(int(Op.PUT), b"k%d" % i, b"value %d" % i)]) for i in range(5)]
_BODY = encode_segment_header(1) + b"".join(_FRAMES)


def _chunks() -> st.SearchStrategy[bytes]:
    # Random bytes, plus pieces that look like frames: the marker byte, a plausible
    # small length, a prefix of a real frame, a real frame with one bit flipped.
    prefix = st.builds(lambda f, n: f[: n % len(f)], st.sampled_from(_FRAMES), st.integers(0, 99))
    flipped = st.builds(
        lambda f, i: f[: i % len(f)] + bytes([f[i % len(f)] ^ 1]) + f[i % len(f) + 1 :],
        st.sampled_from(_FRAMES),
        st.integers(0, 99),
    )
    header = st.builds(
        lambda n, c: n.to_bytes(4, "little") + c + bytes([FRAME_PAYLOAD_MARKER]),
        st.integers(0, 64),
        st.binary(min_size=4, max_size=4),
    )
    return st.one_of(
        st.binary(max_size=64),
        st.just(bytes([FRAME_PAYLOAD_MARKER])),
        st.just(bytes(8)),
        prefix,
        flipped,
        header,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(_chunks(), min_size=1, max_size=8).map(b"".join))
def test_random_tail_is_never_mistaken_for_frames(tail: bytes) -> None:
    data = _BODY + tail
    reader = SegmentReader(data)
    frames = list(reader.frames())
    assert [(f.first_lsn, f.end) for f in frames] == [
        (i + 1, 24 + sum(map(len, _FRAMES[: i + 1]))) for i in range(5)
    ]
    assert reader.end is not None
    assert reader.end.offset == len(_BODY)
    if not tail:
        assert reader.end.kind is EndKind.CLEAN
    elif tail.count(0) == len(tail):
        assert reader.end.kind is EndKind.ZERO_TAIL
    else:
        assert reader.end.kind is EndKind.DAMAGED
    assert valid_frame_after(data, len(_BODY)) is None


def test_scan_finds_valid_frame_after_damage() -> None:
    # The other half of the question above: a real frame after junk is found.
    junk = bytes([FRAME_PAYLOAD_MARKER]) + b"\x01\x02\x03junk" + bytes([FRAME_PAYLOAD_MARKER])
    data = _BODY + junk + _FRAMES[0]
    assert valid_frame_after(data, len(_BODY)) == len(_BODY) + len(junk)


@settings(max_examples=25, deadline=None)
@given(tail=st.lists(_chunks(), min_size=1, max_size=6).map(b"".join).filter(bool))
def test_recovery_cuts_any_random_tail(
    single: History, tmp_path_factory: pytest.TempPathFactory, tail: bytes
) -> None:
    root = single.copy(str(tmp_path_factory.mktemp("tail") / "db"))
    name, _start, end = last_frame_of(single)
    path = seg(root, name)
    write_at(path, end, tail)

    with opened(root, SINGLE) as engine:
        assert engine.table == single.states[N]
        [cut] = engine.recovery_report.cuts
        assert (cut.offset, cut.length) == (end, len(tail))
        zeros = tail.count(0) == len(tail)
        assert cut.kept_in == (None if zeros else path + ".broken")
    assert os.path.getsize(path) == end
    if not zeros:
        assert read(path + ".broken") == tail
