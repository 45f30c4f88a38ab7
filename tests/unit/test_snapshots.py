"""Snapshots: the file format, falling back past a damaged one, which WAL segments a
checkpoint may delete, and crashes between the snapshot and the deletion."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import crc32c
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import CorruptionError, Engine, Op, RecoveryMode
from storage.errors import SnapshotDamagedError
from storage.format import (
    decode_snapshot_header,
    encode_frame,
    encode_segment_header,
    encode_snapshot_header,
    snapshot_name,
)
from storage.fs import OsFileSystem
from storage.snapshot import (
    Contents,
    encode_snapshot,
    read_snapshot,
    snapshot_path,
    write_snapshot,
)
from storage.testing.memfs import MemFileSystem
from tests.unit.storage_util import (
    History,
    Write,
    append,
    apply,
    first_lsn,
    flip_bit,
    opened,
    options,
    read,
    record_history,
    segment_paths,
    snap_dir,
    states_of,
    tree_bytes,
    truncate,
    wal_dir,
    write_all,
)

MULTI = options(segment_bytes=4096)


def phase_writes(phase: int) -> list[Write]:
    """About two segments of writes; phase 1 holds a CLEAR, every phase DELETEs."""
    writes: list[Write] = []
    for i in range(36):
        if phase == 1 and i == 20:
            writes.append((Op.CLEAR, b"", None))
        elif i % 5 == 4:
            writes.append((Op.DELETE, b"k%02d" % ((i + phase) % 15), None))
        else:
            value = (b"%d:%d|" % (phase, i)) * 30
            writes.append((Op.PUT, b"k%02d" % ((i * 7 + phase) % 15), value))
    return writes


def names(directory: str, suffix: str) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(suffix))


@dataclass
class Checkpointed:
    """Three checkpoints with writes before each, then more writes, closed cleanly."""

    root: str
    writes: list[Write]
    states: list[dict[bytes, bytes]]
    snaps: list[int]
    segments_before: list[list[str]]
    """WAL listing just before each checkpoint."""
    segments_after: list[list[str]]
    snapshots_after: list[list[str]]


def three_checkpoints(root: str) -> Checkpointed:
    writes: list[Write] = []
    snaps: list[int] = []
    before: list[list[str]] = []
    after: list[list[str]] = []
    snap_after: list[list[str]] = []
    with opened(root, MULTI) as engine:
        for phase in range(3):
            write_all(engine, phase_writes(phase))
            writes += phase_writes(phase)
            before.append(names(wal_dir(root), ".wal"))
            engine.checkpoint()
            snaps.append(len(writes))
            after.append(names(wal_dir(root), ".wal"))
            snap_after.append(names(snap_dir(root), ".snap"))
        write_all(engine, phase_writes(3))
        writes += phase_writes(3)
    return Checkpointed(root, writes, states_of(writes), snaps, before, after, snap_after)


def seg_name(lsn: int) -> str:
    return f"{lsn:016x}.wal"


def test_wal_segments_are_deleted_only_once_covered_by_previous_snapshot(tmp_path: Path) -> None:
    c = three_checkpoints(str(tmp_path / "db"))
    s1, s2, s3 = c.snaps
    assert c.snapshots_after == [
        [snapshot_name(s1)],
        [snapshot_name(s1), snapshot_name(s2)],
        [snapshot_name(s2), snapshot_name(s3)],  # s1 goes once s2 is the previous one
    ]
    for k, s in enumerate(c.snaps):
        # Every checkpoint first rotates, so a segment starts right after the snapshot.
        assert seg_name(s + 1) in c.segments_after[k]
        assert seg_name(s + 1) not in c.segments_before[k]
    # First checkpoint: nothing is deleted (there is no previous snapshot).
    assert c.segments_after[0] == sorted([*c.segments_before[0], seg_name(s1 + 1)])
    # Second: exactly the segments wholly covered by the *first* snapshot go.
    assert (
        len(c.segments_before[1]) > len([n for n in c.segments_before[1] if first_lsn(n) > s1]) > 0
    )
    assert c.segments_after[1] == sorted(
        [n for n in c.segments_before[1] if first_lsn(n) > s1] + [seg_name(s2 + 1)]
    )
    # Third: those covered by the second go; everything after it remains.
    assert c.segments_after[2] == sorted(
        [n for n in c.segments_before[2] if first_lsn(n) > s2] + [seg_name(s3 + 1)]
    )
    assert c.segments_after[2][0] == seg_name(s2 + 1)

    with opened(c.root, MULTI) as engine:
        assert engine.table == c.states[-1]
        assert engine.recovery_report.snapshot == snapshot_path(c.root, s3)
        assert engine.recovery_report.records_replayed == len(c.writes) - s3


# -- damaged snapshots ----------------------------------------------------------------

SnapDamage = Callable[[str, int, dict[bytes, bytes]], str]
"""Damages the snapshot at path (for lsn, holding table); returns the expected reason."""


def _flip(offset: int, reason: str) -> SnapDamage:
    def damage(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
        flip_bit(path, offset if offset >= 0 else os.path.getsize(path) + offset)
        return reason

    return damage


def _lsn_field(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    flip_bit(path, 16)
    return f"header says LSN {lsn ^ 1}, file name says {lsn}"


def _body_len_field(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    flip_bit(path, 32)
    return f"size {os.path.getsize(path)} does not match header"


def _body(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    flip_bit(path, 40 + (os.path.getsize(path) - 44) // 2, 5)
    return "checksum mismatch"


def _truncated(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    truncate(path, os.path.getsize(path) - 1)
    return f"size {os.path.getsize(path)} does not match header"


def _extended(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    append(path, b"\0")
    return f"size {os.path.getsize(path)} does not match header"


def _empty(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    truncate(path, 0)
    return "bad header"


def _checksummed(path: str, lsn: int, count: int, body: bytes) -> None:
    header = encode_snapshot_header(lsn, count, len(body))
    with open(path, "wb") as f:
        f.write(header + body + crc32c.crc32c(body, crc32c.crc32c(header)).to_bytes(4, "little"))


def _wrong_count(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    _checksummed(path, lsn, len(table) + 1, msgpack.packb([0, table, {}], use_bin_type=True))
    return "body does not hold the key count in the header"


def _not_msgpack(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    _checksummed(path, lsn, len(table), b"\xc1")
    return "body does not decode: "


def _not_a_map(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    _checksummed(path, lsn, len(table), msgpack.packb([b"k", b"v"], use_bin_type=True))
    return "body has the wrong shape"


def _other_lsn(path: str, lsn: int, table: dict[bytes, bytes]) -> str:
    with open(path, "wb") as f:
        f.write(b"".join(encode_snapshot(lsn + 1, Contents(table))))
    return f"header says LSN {lsn + 1}, file name says {lsn}"


SNAPSHOT_DAMAGE: dict[str, SnapDamage] = {
    "magic": _flip(0, "bad header"),
    "version": _flip(8, "bad header"),
    "lsn-field": _lsn_field,
    "count-field": _flip(24, "checksum mismatch"),
    "body-len-field": _body_len_field,
    "body": _body,
    "trailer": _flip(-1, "checksum mismatch"),
    "truncated": _truncated,
    "extended": _extended,
    "empty": _empty,
    "checksummed-wrong-count": _wrong_count,
    "checksummed-not-msgpack": _not_msgpack,
    "checksummed-not-a-map": _not_a_map,
    "header-from-other-lsn": _other_lsn,
}


@pytest.mark.parametrize("damage", SNAPSHOT_DAMAGE)
def test_damaged_snapshot_fails_verification(tmp_path: Path, damage: str) -> None:
    fs = OsFileSystem()
    root = str(tmp_path)
    os.makedirs(snap_dir(root))
    table = {b"a": b"1", b"b": b"2"}
    path = write_snapshot(fs, root, 9, Contents(table))
    reason = SNAPSHOT_DAMAGE[damage](path, 9, table)
    with pytest.raises(SnapshotDamagedError) as info:
        read_snapshot(fs, path, 9)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize("damage", SNAPSHOT_DAMAGE)
def test_damaged_newest_snapshot_falls_back_to_previous(tmp_path: Path, damage: str) -> None:
    c = three_checkpoints(str(tmp_path / "db"))
    _s1, s2, s3 = c.snaps
    newest = snapshot_path(c.root, s3)
    reason = SNAPSHOT_DAMAGE[damage](newest, s3, c.states[s3])
    damaged = read(newest)

    with opened(c.root, MULTI) as engine:
        report = engine.recovery_report
        assert engine.table == c.states[-1]
        assert (report.snapshot, report.snapshot_lsn) == (snapshot_path(c.root, s2), s2)
        assert report.records_replayed == len(c.writes) - s2
        [entry] = report.broken_snapshots
        assert entry.startswith(f"{newest} ({reason}")
        assert entry.endswith(f"; renamed {snapshot_name(s3)}.broken)")
    assert not os.path.exists(newest)
    assert read(newest + ".broken") == damaged

    # The fallback is stable: the next start uses the same snapshot, reports nothing new.
    with opened(c.root, MULTI) as engine:
        assert engine.table == c.states[-1]
        assert engine.recovery_report.snapshot_lsn == s2
        assert engine.recovery_report.broken_snapshots == []


@pytest.mark.parametrize("mode", list(RecoveryMode))
def test_every_snapshot_damaged_without_full_wal_refuses_to_start(
    tmp_path: Path, mode: RecoveryMode
) -> None:
    c = three_checkpoints(str(tmp_path / "db"))
    for lsn in c.snaps[1:]:
        _body(snapshot_path(c.root, lsn), lsn, {})
    before = tree_bytes(c.root)
    first_segment = segment_paths(c.root)[0]
    assert first_lsn(first_segment) == c.snaps[1] + 1

    for _attempt in range(2):
        # Refusing changes nothing, so a retry (in any mode) refuses the same way
        # instead of finding no snapshots and starting empty.
        with pytest.raises(CorruptionError) as info:
            Engine.open(c.root, options(segment_bytes=4096, recovery_mode=mode))
        assert (info.value.path, info.value.offset) == (first_segment, 0)
        assert "every snapshot is damaged" in info.value.reason
        assert tree_bytes(c.root) == before


def test_every_snapshot_damaged_with_full_wal_replays_from_start(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    writes = phase_writes(0) + phase_writes(1)
    with opened(root, MULTI) as engine:
        write_all(engine, phase_writes(0))
        engine.checkpoint()
        write_all(engine, phase_writes(1))
    lsn = len(phase_writes(0))
    path = snapshot_path(root, lsn)
    _body(path, lsn, {})

    with opened(root, MULTI) as engine:
        report = engine.recovery_report
        assert engine.table == states_of(writes)[-1]
        assert (report.snapshot, report.snapshot_lsn) == (None, 0)
        assert report.records_replayed == len(writes)
        assert len(report.broken_snapshots) == 1
    assert os.path.exists(path + ".broken") and not os.path.exists(path)


# -- crashes around a checkpoint --------------------------------------------------------


class SnapshotCrashFs(MemFileSystem):
    """Takes crash images just before and after the snapshot directory is fsync'd,
    i.e. before the snapshot's rename is durable and after it, but before the
    engine deletes the WAL segments the previous snapshot covers."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.images: list[MemFileSystem] = []

    def sync_dir(self, path: str) -> None:
        if not (self.armed and path.endswith("/snap")):
            super().sync_dir(path)
            return
        self.armed = False
        self.images.append(self.crash())
        super().sync_dir(path)
        self.images.append(self.crash())


def test_crash_between_snapshot_rename_and_wal_deletion_recovers_full_state() -> None:
    fs = SnapshotCrashFs()
    writes: list[Write] = []
    with opened("/db", MULTI, fs=fs) as engine:
        for phase in range(3):
            write_all(engine, phase_writes(phase))
            writes += phase_writes(phase)
            fs.armed = phase == 2
            engine.checkpoint()
    s2, s3 = len(writes) - 36, len(writes)
    expected = states_of(writes)[-1]
    live_segments = sorted(p for p in fs.files() if p.endswith(".wal"))
    before, after = fs.images
    after_segments = sorted(p for p in after.files() if p.endswith(".wal"))
    # The image still holds the segments the live directory has since deleted.
    assert set(live_segments) < set(after_segments)
    assert snapshot_path("/db", s3) not in before.files()
    assert snapshot_path("/db", s3) in after.files()

    with opened("/db", MULTI, fs=before) as engine:
        assert engine.table == expected
        assert engine.recovery_report.snapshot_lsn == s2
        assert engine.recovery_report.records_replayed == s3 - s2
    with opened("/db", MULTI, fs=after) as engine:
        assert engine.table == expected
        assert engine.recovery_report.snapshot_lsn == s3
        assert engine.recovery_report.records_replayed == 0
        # The next checkpoint deletes what the crash left behind.
        write_all(engine, phase_writes(3))
        engine.checkpoint()
        assert (
            sorted(p for p in after.files() if p.endswith(".wal"))[0]
            == f"/db/wal/{seg_name(s3 + 1)}"
        )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = str(tmp_path_factory.mktemp("hist") / "db")
    return record_history(root, phase_writes(0) + phase_writes(1), MULTI)


def _marked(table: dict[bytes, bytes], lsn: int) -> dict[bytes, bytes]:
    # Different from the true state at lsn in ways that replaying any record <= lsn
    # again would undo: re-applied PUTs restore old values, a re-applied CLEAR or
    # DELETE removes keys.
    marked = {k: v + b"*from-snapshot" for k, v in table.items()}
    marked[b"only-in-snapshot"] = b"%d" % lsn
    return marked


@pytest.mark.parametrize("lsn", range(1, 73))
def test_snapshot_over_uncut_wal_replays_only_later_records(
    history: History, tmp_path: Path, lsn: int
) -> None:
    # A crash after the snapshot's rename but before any WAL deletion, at any LSN,
    # including mid-segment: records the snapshot holds are not applied twice.
    assert len(history.writes) == 72
    root = history.copy(str(tmp_path / "db"))
    marked = _marked(history.states[lsn], lsn)
    write_snapshot(OsFileSystem(), root, lsn, Contents(marked))
    expected = dict(marked)
    for write in history.writes[lsn:]:
        apply(expected, write)

    with opened(root, MULTI) as engine:
        report = engine.recovery_report
        assert engine.table == expected
        assert (report.snapshot_lsn, report.last_lsn) == (lsn, len(history.writes))
        assert report.records_replayed == len(history.writes) - lsn
        # The checkpoint policy counts only the WAL the snapshot does not cover.
        assert engine.stats().checkpoints.wal_bytes_since_snapshot == sum(
            end - start for name in history.segments
            for i, (start, end) in enumerate(history.spans[name])
            if history.frame_lsn(name, i) > lsn)


GROUPED: list[list[Write]] = [
    [(Op.PUT, b"a", b"1"), (Op.PUT, b"b", b"2"), (Op.PUT, b"c", b"3")],
    [(Op.DELETE, b"a", None), (Op.CLEAR, b"", None), (Op.PUT, b"d", b"4")],
    [(Op.PUT, b"b", b"5"), (Op.DELETE, b"d", None)],
    [(Op.PUT, b"e", b"6"), (Op.CLEAR, b"", None), (Op.PUT, b"a", b"7"), (Op.PUT, b"c", b"8")],
]
"""Commit groups of several records: the frames a busy server writes."""


@pytest.mark.parametrize("lsn", range(1, sum(map(len, GROUPED)) + 1))
def test_snapshot_inside_a_frame_applies_only_the_later_records_of_it(tmp_path: Path,
                                                                      lsn: int) -> None:
    root = str(tmp_path / "db")
    os.makedirs(wal_dir(root))
    os.makedirs(snap_dir(root))
    frames, next_lsn = [], 1
    for group in GROUPED:
        frames.append(encode_frame(next_lsn, [(int(op), k, v) for op, k, v in group]))
        next_lsn += len(group)
    with open(os.path.join(wal_dir(root), seg_name(1)), "wb") as f:
        f.write(encode_segment_header(1) + b"".join(frames))
    writes = [w for group in GROUPED for w in group]
    marked = _marked(states_of(writes)[lsn], lsn)
    write_snapshot(OsFileSystem(), root, lsn, Contents(marked))
    expected = dict(marked)
    for write in writes[lsn:]:
        apply(expected, write)

    with opened(root, MULTI) as engine:
        assert engine.table == expected
        assert engine.recovery_report.records_replayed == len(writes) - lsn
        assert engine.last_lsn == len(writes)


def test_leftover_temp_files_are_removed_at_startup(history: History, tmp_path: Path) -> None:
    root = history.copy(str(tmp_path / "db"))
    temps = [
        os.path.join(snap_dir(root), snapshot_name(40) + ".tmp"),
        os.path.join(snap_dir(root), "other.tmp"),
        os.path.join(wal_dir(root), seg_name(99) + ".tmp"),
    ]
    for path in temps:
        with open(path, "wb") as f:
            f.write(b"half a snapshot")
    kept = tree_bytes(root)

    with opened(root, MULTI) as engine:
        assert sorted(engine.recovery_report.removed_temp_files) == sorted(temps)
        assert engine.table == history.states[-1]
    assert not any(os.path.exists(p) for p in temps)
    after = tree_bytes(root)
    untouched = {k: v for k, v in kept.items() if not k.endswith(".tmp")}
    assert {k: after[k] for k in untouched} == untouched


# -- the file format --------------------------------------------------------------------

TABLES = {
    "empty": {},
    "empty-key-and-value": {b"": b""},
    "every-byte": {bytes([i]): bytes([255 - i]) * i for i in range(256)},
    "utf8": {"ключ/ü:é".encode(): "значение".encode()},
    "large-value": {b"big": bytes(range(256)) * 4096},
}


@pytest.mark.parametrize("name", TABLES)
def test_snapshot_round_trip(tmp_path: Path, name: str) -> None:
    table = TABLES[name]
    fs = OsFileSystem()
    root = str(tmp_path)
    os.makedirs(snap_dir(root))
    path = write_snapshot(fs, root, 0x1234, Contents(table))

    assert path == os.path.join(snap_dir(root), "0000000000001234.snap")
    assert os.listdir(snap_dir(root)) == ["0000000000001234.snap"]
    data = read(path)
    assert data == b"".join(encode_snapshot(0x1234, Contents(table)))
    assert data[:8] == b"walkvSNP"
    lsn, count, body_len = decode_snapshot_header(data) or (0, 0, 0)
    assert (lsn, count, len(data)) == (0x1234, len(table), 40 + body_len + 4)
    assert int.from_bytes(data[-4:], "little") == crc32c.crc32c(data[:-4])
    assert read_snapshot(fs, path, 0x1234).values == table


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=24), st.binary(max_size=64), max_size=40),
    st.integers(1, 2**64 - 1),
)
def test_snapshot_round_trip_any_table(table: dict[bytes, bytes], lsn: int) -> None:
    fs = MemFileSystem()
    fs.makedirs("/r/snap")
    path = write_snapshot(fs, "/r", lsn, Contents(table))
    assert read_snapshot(fs, path, lsn).values == table
    assert fs.listdir("/r/snap") == [snapshot_name(lsn)]
