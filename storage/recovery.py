"""Recovery: rebuild the table from the newest valid snapshot plus the WAL after it.

Theory of operation
-------------------
Startup *is* recovery. Everything that was acknowledged was fdatasync'd in a WAL
frame (one frame per commit group) before its client heard back, so the durable
state is: some snapshot (the table at LSN s) followed by every frame with LSNs after
s, contiguous, up to the end of the newest segment.

1. Leftover ``*.tmp`` files (a snapshot write cut short) are removed.
2. Snapshots are tried newest first. One that fails any check is skipped and the
   previous one is tried; once recovery has succeeded, damaged ones are renamed
   ``*.broken`` (kept, never deleted; a refusal leaves them in place). WAL segments are
   only deleted once a *later* snapshot covers them, so the previous snapshot plus a
   longer WAL still reaches the same state.
3. Segments are replayed from the one holding LSN s+1. Every frame's checksum is
   verified and its first LSN must be exactly the next expected LSN: a gap, a missing
   segment or a segment whose header does not match its name is detected, never
   replayed around.
4. The readable part of a segment ends at end-of-file, at zeros (preallocated space)
   or at bytes that are not a valid frame. In the newest segment, damage with no
   valid frame anywhere after it is a *torn tail*: a group that was being written when
   the process died and was never acknowledged. It is cut back to the last good frame;
   the cut bytes are kept in a ``*.broken`` side file. Damage anywhere else, or with a
   valid frame after it, is *corruption*: recovery refuses with the file and byte
   offset (``CorruptionError``), unless the operator asked for point-in-time recovery,
   which keeps the longest valid prefix and sets the rest aside.
5. The caller then opens a fresh segment at the next LSN and starts serving.

Every change recovery makes to the directory goes through ``_Changes``. With
``dry_run=True`` nothing is changed and the report names what a start would do; the
offline tools (``python -m storage``) use that, so they judge a directory with
exactly this code. Segments are judged by ``storage.wal.scan.SegmentScan``, shared with them.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import asdict, dataclass, field
from enum import Enum

from storage.errors import CorruptionError, SnapshotDamagedError
from storage.format import (
    BROKEN_SUFFIX,
    SEGMENT_HEADER_SIZE,
    SNAP_DIR,
    SNAP_SUFFIX,
    TMP_SUFFIX,
    WAL_DIR,
    WAL_SUFFIX,
    segment_name,
)
from storage.fs import FileSystem
from storage.keyspace import Keyspace
from storage.snapshot import Contents, read_snapshot, snapshot_path
from storage.wal.reader import Frame
from storage.wal.scan import SegmentScan, Verdict, list_lsns


class RecoveryMode(Enum):
    """What to do about damage before the tail of the log."""

    STRICT = "strict"
    """Refuse to start, naming the file and offset (the default)."""
    POINT_IN_TIME = "point-in-time"
    """Keep the longest valid prefix of the history; set the rest aside and report it."""


@dataclass(slots=True)
class Cut:
    """Bytes removed from the end of a segment (or a whole segment set aside)."""

    path: str
    offset: int
    length: int
    reason: str
    kept_in: str | None
    """Side file holding the removed bytes; None when they were all zeros."""


@dataclass(slots=True)
class RecoveryReport:
    """What recovery found and did; logged on one line and kept for stats."""

    snapshot: str | None = None
    snapshot_lsn: int = 0
    broken_snapshots: list[str] = field(default_factory=list)
    removed_temp_files: list[str] = field(default_factory=list)
    segments_replayed: int = 0
    frames_replayed: int = 0
    records_replayed: int = 0
    bytes_replayed: int = 0
    last_lsn: int = 0
    keys: int = 0
    cuts: list[Cut] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Point-in-time mode: what was set aside after the first damage, and why."""
    removed_empty_segments: list[str] = field(default_factory=list)
    """Newest segments that held no frame (a fresh one is created at the same LSN)."""
    duration_s: float = 0.0

    def line(self) -> str:
        """The one-line summary logged at startup."""
        parts = []
        if self.snapshot:
            parts.append(f"snapshot {posixpath.basename(self.snapshot)} (LSN {self.snapshot_lsn})")
        else:
            parts.append("no snapshot")
        parts.append(
            f"replayed {self.frames_replayed} frames / {self.records_replayed} records / "
            f"{self.bytes_replayed} bytes from {self.segments_replayed} segments"
        )
        parts.append(f"last LSN {self.last_lsn}, {self.keys} keys")
        for cut in self.cuts:
            kept = f", kept in {cut.kept_in}" if cut.kept_in else ""
            parts.append(f"cut {cut.length} bytes at {cut.path}:{cut.offset} ({cut.reason}{kept})")
        parts.extend(f"damaged snapshot set aside: {b}" for b in self.broken_snapshots)
        parts.extend(f"DROPPED (point-in-time): {d}" for d in self.dropped)
        parts.append(f"{self.duration_s * 1000:.1f} ms")
        return "recovery: " + "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for the stats API)."""
        return asdict(self)


@dataclass(slots=True)
class RecoveredState:
    """The result of recovery, handed to the engine."""

    keyspace: Keyspace
    last_lsn: int
    snapshots: list[int]
    """LSNs of the snapshots on disk that were not set aside, ascending."""
    segments: list[int]
    """First LSNs of the WAL segments on disk, ascending (the engine appends a new one)."""
    wal_bytes_since_snapshot: int
    report: RecoveryReport


def recover(fs: FileSystem, root: str, mode: RecoveryMode = RecoveryMode.STRICT, *,
            dry_run: bool = False) -> RecoveredState:
    """Rebuild the state in ``root`` (see the module docstring). Raises CorruptionError.

    ``dry_run``: change nothing on disk; the report says what would be cut, set aside
    or removed (``Cut.kept_in`` names the side file that would be written).
    """
    started = time.monotonic()
    report = RecoveryReport()
    changes = _Changes(fs, dry_run)
    wal_dir = posixpath.join(root, WAL_DIR)
    snap_dir = posixpath.join(root, SNAP_DIR)
    changes.makedirs(wal_dir)
    changes.makedirs(snap_dir)
    _remove_temp_files(changes, (wal_dir, snap_dir), report)

    snapshots = changes.list_lsns(snap_dir, SNAP_SUFFIX)
    contents, snap_lsn, snapshots, damaged = _load_newest_snapshot(fs, root, snapshots, report)
    table = Keyspace(contents.values, contents.expires, contents.clock_ms,
                     values_sorted=contents.in_order)
    segments = changes.list_lsns(wal_dir, WAL_SUFFIX)
    replay = _Replay(changes, root, mode, report, table, snap_lsn)
    segments = replay.run(segments)
    # Only now, with a state to start from: a refusal above must leave the snapshots
    # where they were, or a retry would no longer know that they existed.
    for path in damaged:
        changes.set_aside(path)

    report.last_lsn = replay.last_lsn
    report.keys = len(table)
    report.duration_s = time.monotonic() - started
    return RecoveredState(
        keyspace=table,
        last_lsn=replay.last_lsn,
        snapshots=snapshots,
        segments=segments,
        wal_bytes_since_snapshot=replay.bytes_after_snapshot,
        report=report,
    )


def _remove_temp_files(changes: _Changes, dirs: tuple[str, ...], report: RecoveryReport) -> None:
    for directory in dirs:
        temps = [posixpath.join(directory, n) for n in changes.listdir(directory)
                 if n.endswith(TMP_SUFFIX)]
        changes.remove(temps, directory)
        report.removed_temp_files.extend(temps)


def _load_newest_snapshot(
    fs: FileSystem, root: str, lsns: list[int], report: RecoveryReport
) -> tuple[Contents, int, list[int], list[str]]:
    """(contents, its LSN, snapshots kept, damaged snapshots to set aside once recovered)."""
    damaged: list[str] = []
    for i in range(len(lsns) - 1, -1, -1):
        path = snapshot_path(root, lsns[i])
        try:
            table = read_snapshot(fs, path, lsns[i])
        except SnapshotDamagedError as exc:
            damaged.append(path)
            aside = _aside_name(fs, path)
            report.broken_snapshots.append(f"{path} ({exc}; renamed {posixpath.basename(aside)})")
            continue
        report.snapshot = path
        report.snapshot_lsn = lsns[i]
        return table, lsns[i], lsns[: i + 1], damaged
    return Contents({}), 0, [], damaged


class _Replay:
    """Replays segments into the table, cutting a torn tail or stopping at damage."""

    def __init__(self, changes: _Changes, root: str, mode: RecoveryMode, report: RecoveryReport,
                 table: Keyspace, snap_lsn: int) -> None:
        self.changes = changes
        self.fs = changes.fs
        self.wal_dir = posixpath.join(root, WAL_DIR)
        self.mode = mode
        self.report = report
        self.table = table
        self.snap_lsn = snap_lsn
        self.expected = snap_lsn + 1
        self.bytes_after_snapshot = 0

    def path(self, first_lsn: int) -> str:
        return posixpath.join(self.wal_dir, segment_name(first_lsn))

    def run(self, segments: list[int]) -> list[int]:
        """Replay; returns the segments left on disk (first LSNs, ascending)."""
        if not segments:
            self._check_nothing_missing(None)
            return []
        # The segment holding snap_lsn + 1 is the last one starting at or before it.
        start = 0
        for i, first in enumerate(segments):
            if first <= self.snap_lsn + 1:
                start = i
        if segments[start] > self.snap_lsn + 1:
            self._check_nothing_missing(segments[start])
            return self._drop_from(segments, start, 0, self._gap_reason(segments[start]))
        self.expected = segments[start]
        for i in range(start, len(segments)):
            newest = i == len(segments) - 1
            damage = self._replay_segment(segments[i], newest)
            if damage is _REMOVED:
                segments = segments[:i]
                break
            if damage is not None:
                return self._drop_from(segments, i, damage.offset, damage.reason)
        return self._forget_empty_newest(segments)

    @property
    def last_lsn(self) -> int:
        """The last LSN whose record is in the recovered state."""
        return max(self.expected - 1, self.snap_lsn)

    def _gap_reason(self, first: int) -> str:
        return (f"WAL segment starts at LSN {first} but the newest usable snapshot ends at "
                f"LSN {self.snap_lsn}: a segment is missing")

    def _check_nothing_missing(self, first_segment: int | None) -> None:
        # No usable snapshot, and the WAL does not reach back to LSN 1 (or snapshots
        # existed and there is no WAL at all): there is no valid prefix to rebuild from,
        # so even point-in-time mode refuses rather than start with an empty store.
        if self.snap_lsn != 0:
            return
        if first_segment is None and not self.report.broken_snapshots:
            return  # a new, empty store
        if first_segment == 1:
            return
        where = self.path(first_segment) if first_segment is not None else self.wal_dir
        damaged = "every snapshot is damaged and " if self.report.broken_snapshots else (
            "no snapshot covers the history before it and ")
        raise CorruptionError(where, 0, f"{damaged}the WAL does not reach back to LSN 1; "
                              "refusing to start with partial data")

    def _replay_segment(self, first: int, newest: bool) -> _Damage | None:
        """Replays one segment; returns where damage begins, if it does."""
        path = self.path(first)
        data = self.fs.read_bytes(path)
        scan = SegmentScan(data, first, self.expected, newest)
        for frame in scan.frames():
            self._apply(frame)
        self.expected = scan.expected
        if scan.header_ok:
            self.report.segments_replayed += 1
        outcome = scan.outcome
        assert outcome is not None
        if outcome.verdict is Verdict.TORN_HEADER:
            # Created but its header never became durable: nothing was in it.
            self._cut(path, data, 0, outcome.reason)
            return _REMOVED
        if outcome.verdict is Verdict.DAMAGED:
            return _Damage(outcome.offset, outcome.reason)
        if outcome.verdict is Verdict.TORN_TAIL:
            self._cut(path, data, outcome.offset, outcome.reason)
        elif outcome.verdict is Verdict.ZERO_TAIL and newest:
            self._cut(path, data, outcome.offset, "unused preallocated space")
        return None

    def _apply(self, frame: Frame) -> None:
        report = self.report
        size = frame.end - frame.offset
        report.frames_replayed += 1
        report.bytes_replayed += size
        # Records up to the snapshot's LSN are in the table already.
        skip = self.snap_lsn + 1 - frame.first_lsn
        if skip >= frame.count:
            return
        self.bytes_after_snapshot += size
        if skip <= 0:
            self.table.apply(frame.ops, frame.keys, frame.values, frame.deadlines,
                             frame.time_ms)
            report.records_replayed += frame.count
        else:
            deadlines = frame.deadlines[skip:] if frame.deadlines is not None else None
            self.table.apply(frame.ops[skip:], frame.keys[skip:], frame.values[skip:],
                             deadlines, frame.time_ms)
            report.records_replayed += frame.count - skip

    def _drop_from(self, segments: list[int], index: int, offset: int, reason: str) -> list[int]:
        """Damage before the tail: refuse, or (point-in-time) set everything after aside."""
        path = self.path(segments[index])
        if self.mode is not RecoveryMode.POINT_IN_TIME:
            raise CorruptionError(path, offset, reason)
        data = self.fs.read_bytes(path)
        if offset <= SEGMENT_HEADER_SIZE:
            aside = self.changes.set_aside(path)
            self.report.dropped.append(f"{path} whole ({reason}), kept in {aside}")
            kept = segments[:index]
        else:
            self._cut(path, data, offset, f"point-in-time: {reason}")
            self.report.dropped.append(f"{path} from byte {offset} ({reason})")
            kept = segments[: index + 1]
        for later in segments[index + 1 :]:
            aside = self.changes.set_aside(self.path(later))
            self.report.dropped.append(
                f"{self.path(later)} whole (after the damage), kept in {aside}")
        return self._forget_empty_newest(kept)

    def _forget_empty_newest(self, segments: list[int]) -> list[int]:
        # A newest segment without frames is named by the LSN the next segment would
        # take; remove it so the engine can create that segment afresh.
        if segments and segments[-1] == self.last_lsn + 1:
            path = self.path(segments[-1])
            if self.changes.size(path) <= SEGMENT_HEADER_SIZE:
                self.changes.remove([path], self.wal_dir)
                self.report.removed_empty_segments.append(path)
                return segments[:-1]
        return segments

    def _cut(self, path: str, data: bytes, offset: int, reason: str) -> None:
        kept_in = self.changes.cut(path, data, offset)
        self.report.cuts.append(Cut(path, offset, len(data) - offset, reason, kept_in))


class _Changes:
    """Every change recovery makes to the directory; with ``dry_run``, none is made.

    In a dry run the methods return what they would have returned (the side file a
    cut would write, the name a file would be set aside as), and a file that would
    have been cut reads as cut afterwards (``size``).
    """

    def __init__(self, fs: FileSystem, dry_run: bool) -> None:
        self.fs = fs
        self.dry_run = dry_run
        self._cut_sizes: dict[str, int] = {}

    def makedirs(self, path: str) -> None:
        if not self.dry_run:
            self.fs.makedirs(path)

    def listdir(self, directory: str) -> list[str]:
        if self.dry_run and not self.fs.exists(directory):
            return []
        return self.fs.listdir(directory)

    def list_lsns(self, directory: str, suffix: str) -> list[int]:
        if self.dry_run and not self.fs.exists(directory):
            return []
        return list_lsns(self.fs, directory, suffix)

    def size(self, path: str) -> int:
        cut = self._cut_sizes.get(path)
        return cut if cut is not None else self.fs.size(path)

    def remove(self, paths: list[str], directory: str) -> None:
        """Unlink ``paths`` (all in ``directory``), then make that durable."""
        if self.dry_run or not paths:
            return
        for path in paths:
            self.fs.unlink(path)
        self.fs.sync_dir(directory)

    def set_aside(self, path: str) -> str:
        """Rename to ``*.broken``; returns the new name."""
        if self.dry_run:
            return _aside_name(self.fs, path)
        return set_aside(self.fs, path)

    def cut(self, path: str, data: bytes, offset: int) -> str | None:
        """Cut ``path`` (whose content is ``data``) to ``offset`` bytes, keeping the cut
        bytes in a side file unless all zero; returns the side file."""
        removed = data[offset:]
        keep = removed.count(0) != len(removed)
        if self.dry_run:
            self._cut_sizes[path] = offset
            return _aside_name(self.fs, path) if keep else None
        kept_in = save_aside(self.fs, path, removed) if keep else None
        if offset == 0:
            self.fs.unlink(path)
        else:
            handle = self.fs.open_write(path)
            try:
                handle.truncate(offset)
                handle.sync()
            finally:
                handle.close()
        self.fs.sync_dir(posixpath.dirname(path))
        return kept_in


@dataclass(frozen=True, slots=True)
class _Damage:
    offset: int
    reason: str


_REMOVED = _Damage(0, "segment removed")


def _aside_name(fs: FileSystem, path: str) -> str:
    candidate = path + BROKEN_SUFFIX
    n = 1
    while fs.exists(candidate):
        candidate = f"{path}.{n}{BROKEN_SUFFIX}"
        n += 1
    return candidate


def set_aside(fs: FileSystem, path: str) -> str:
    """Rename a damaged file to ``*.broken`` (never deleted); returns the new path."""
    aside = _aside_name(fs, path)
    fs.rename(path, aside)
    fs.sync_dir(posixpath.dirname(path))
    return aside


def save_aside(fs: FileSystem, path: str, removed: bytes) -> str:
    """Durably keep bytes cut from ``path`` in a ``*.broken`` side file; returns its path."""
    aside = _aside_name(fs, path)
    handle = fs.create(aside)
    try:
        handle.write_at(0, removed)
        handle.sync()
    finally:
        handle.close()
    fs.sync_dir(posixpath.dirname(path))
    return aside
