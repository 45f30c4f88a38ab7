"""Looking at a stopped server's working directory without changing it.

What the offline tool (``python -m storage``, ``storage/cli.py``) prints comes from
here, and every judgement is made by the code a server start runs:

* snapshots are verified by ``snapshot.read_snapshot``;
* segments are verified by ``scan.SegmentScan`` (checksums, LSN continuity, torn
  tail or corruption), chained from the oldest segment to the newest;
* "what would a start do" is ``recovery.recover(..., dry_run=True)`` itself: its
  report (or its refusal) is shown as it is.

Unlike recovery, ``check_directory`` does not stop at the first damage: it verifies
every snapshot and every segment, so one run lists every problem.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field

from storage.errors import CorruptionError, SnapshotDamagedError
from storage.format import (
    BROKEN_SUFFIX,
    SNAP_DIR,
    SNAP_SUFFIX,
    TMP_SUFFIX,
    WAL_DIR,
    WAL_SUFFIX,
    Record,
    parse_name,
    segment_name,
)
from storage.fs import FileSystem
from storage.recovery import RecoveredState, RecoveryMode, RecoveryReport, recover
from storage.snapshot import read_snapshot, snapshot_path
from storage.wal.scan import SegmentOutcome, SegmentScan, Verdict, list_lsns, nonzero_bytes


@dataclass(frozen=True, slots=True)
class Problem:
    """Damage found: the file, the first byte that cannot be trusted, and why."""

    path: str
    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """One snapshot file and whether it verified."""

    path: str
    lsn: int
    size: int
    keys: int | None
    """Keys it holds; None when it failed verification."""
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One WAL segment: the LSNs it holds and how its readable part ends."""

    path: str
    first_lsn: int
    last_lsn: int
    """LSN of its last valid record (``first_lsn - 1`` when it holds none)."""
    size: int
    frames: int
    records: int
    verdict: Verdict
    end_offset: int
    """Where the valid frames end (damage, torn tail or zeros start here)."""
    reason: str
    tail_bytes: int
    """Bytes from ``end_offset`` to the end of the file."""
    tail_nonzero: int
    """How many of those are not zero (zeros are preallocated space)."""


@dataclass(slots=True)
class CheckReport:
    """Everything ``check`` found in a working directory."""

    root: str
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    segments: list[SegmentInfo] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    other_files: list[str] = field(default_factory=list)
    """Side files (``*.broken``), leftover ``*.tmp`` files and unknown names."""
    plan: RecoveryReport | None = None
    """What a start would do (recovery's own dry run); None when it would refuse."""
    refusal: Problem | None = None
    """Why a start would refuse (strict mode), if it would."""

    @property
    def ok(self) -> bool:
        """No damage anywhere (a torn tail is not damage: a start cuts it)."""
        return not self.problems

    @property
    def torn_tail(self) -> SegmentInfo | None:
        """The newest segment, if it ends in a torn tail (or a torn header)."""
        for seg in self.segments[-1:]:
            if seg.verdict in (Verdict.TORN_TAIL, Verdict.TORN_HEADER):
                return seg
        return None

    def add_problem(self, problem: Problem) -> None:
        """Record ``problem`` unless the same file and offset is already reported."""
        if all((p.path, p.offset) != (problem.path, problem.offset) for p in self.problems):
            self.problems.append(problem)


def check_directory(fs: FileSystem, root: str) -> CheckReport:
    """Verify every snapshot and every WAL frame in ``root``; change nothing."""
    report = CheckReport(root)
    _check_snapshots(fs, root, report)
    _check_segments(fs, root, report)
    report.other_files = _other_files(fs, root)
    try:
        report.plan = recover(fs, root, RecoveryMode.STRICT, dry_run=True).report
    except CorruptionError as exc:
        report.refusal = Problem(exc.path, exc.offset, exc.reason)
        report.add_problem(report.refusal)
    return report


def _check_snapshots(fs: FileSystem, root: str, report: CheckReport) -> None:
    for lsn in _lsns(fs, posixpath.join(root, SNAP_DIR), SNAP_SUFFIX):
        path = snapshot_path(root, lsn)
        size = fs.size(path)
        try:
            keys = len(read_snapshot(fs, path, lsn))
        except SnapshotDamagedError as exc:
            report.snapshots.append(SnapshotInfo(path, lsn, size, None, str(exc)))
            report.add_problem(Problem(path, exc.offset, f"damaged snapshot: {exc}"))
            continue
        report.snapshots.append(SnapshotInfo(path, lsn, size, keys))


def _check_segments(fs: FileSystem, root: str, report: CheckReport) -> None:
    wal_dir = posixpath.join(root, WAL_DIR)
    lsns = _lsns(fs, wal_dir, WAL_SUFFIX)
    expected: int | None = None
    for i, first in enumerate(lsns):
        path = posixpath.join(wal_dir, segment_name(first))
        if expected is not None and expected != first:
            report.add_problem(Problem(
                path, 0, f"segment starts at LSN {first}, expected {expected}: "
                "the segment holding the LSNs between is missing"))
        info = inspect_segment(fs, path, first, newest=i == len(lsns) - 1)
        report.segments.append(info)
        if info.verdict is Verdict.DAMAGED:
            report.add_problem(Problem(path, info.end_offset, info.reason + _why_not_torn(
                info, newest=i == len(lsns) - 1)))
            expected = None  # judge the next segment on its own
        else:
            expected = info.last_lsn + 1


def _why_not_torn(info: SegmentInfo, newest: bool) -> str:
    if info.end_offset == 0:
        return ""
    if newest:
        return " (a valid frame follows, so this is corruption, not a torn tail)"
    return " (in an older segment, so this is corruption, not a torn tail)"


def inspect_segment(fs: FileSystem, path: str, first: int, newest: bool) -> SegmentInfo:
    """Verify one segment on its own (its frames must continue from its name's LSN)."""
    data = fs.read_bytes(path)
    scan = SegmentScan(data, first, first, newest)
    frames = records = 0
    for frame in scan.frames():
        frames += 1
        records += frame.count
    outcome = scan.outcome
    assert outcome is not None
    return SegmentInfo(path, first, scan.expected - 1, len(data), frames, records,
                       outcome.verdict, outcome.offset, outcome.reason,
                       len(data) - outcome.offset, nonzero_bytes(data, outcome.offset))


def _other_files(fs: FileSystem, root: str) -> list[str]:
    out = []
    for directory, suffix in ((WAL_DIR, WAL_SUFFIX), (SNAP_DIR, SNAP_SUFFIX)):
        full = posixpath.join(root, directory)
        if not fs.exists(full):
            continue
        for name in sorted(fs.listdir(full)):
            if parse_name(name, suffix) is None:
                out.append(posixpath.join(full, name))
    return out


def _lsns(fs: FileSystem, directory: str, suffix: str) -> list[int]:
    return list_lsns(fs, directory, suffix) if fs.exists(directory) else []


def describe_other_file(path: str) -> str:
    """What a file that is not a segment or snapshot is, in a few words."""
    if path.endswith(BROKEN_SUFFIX):
        return "set aside (damaged or cut bytes, kept for inspection)"
    if path.endswith(TMP_SUFFIX):
        return "unfinished snapshot (a start removes it)"
    return "not a walkv file (ignored)"


# -- dump -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpedFrame:
    """A valid frame, where it is and what it holds."""

    path: str
    offset: int
    size: int
    first_lsn: int
    records: list[Record]


@dataclass(frozen=True, slots=True)
class DumpedEnd:
    """Where a segment's valid frames stop, when anything but a clean end follows."""

    path: str
    outcome: SegmentOutcome
    tail_bytes: int
    tail_nonzero: int


def dump_frames(fs: FileSystem, root: str, from_lsn: int = 0) -> Iterator[DumpedFrame | DumpedEnd]:
    """Every valid frame holding an LSN >= ``from_lsn``, segment by segment, with an
    entry wherever a segment's frames stop early (damage, torn tail, zeros)."""
    wal_dir = posixpath.join(root, WAL_DIR)
    lsns = _lsns(fs, wal_dir, WAL_SUFFIX)
    for i, first in enumerate(lsns):
        if i + 1 < len(lsns) and lsns[i + 1] <= from_lsn:
            continue  # wholly before from_lsn
        path = posixpath.join(wal_dir, segment_name(first))
        data = fs.read_bytes(path)
        scan = SegmentScan(data, first, first, newest=i == len(lsns) - 1)
        for frame in scan.frames():
            if frame.first_lsn + frame.count > from_lsn:
                yield DumpedFrame(path, frame.offset, frame.end - frame.offset,
                                  frame.first_lsn, frame.records)
        outcome = scan.outcome
        assert outcome is not None
        if outcome.verdict is not Verdict.CLEAN:
            yield DumpedEnd(path, outcome, len(data) - outcome.offset,
                            nonzero_bytes(data, outcome.offset))


# -- stats ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DirectoryStats:
    """The state a start would recover, measured."""

    keys: int
    live_bytes: int
    """Sum of key and value lengths in the recovered table."""
    last_lsn: int
    snapshot: str | None
    snapshot_lsn: int
    wal_bytes_since_snapshot: int
    """Frame bytes after the snapshot: what a start replays."""
    wal_segments: int
    wal_bytes: int
    """Size of every segment on disk (including preallocated zeros)."""
    plan: RecoveryReport


def directory_stats(fs: FileSystem, root: str) -> DirectoryStats:
    """Recover ``root`` in memory (dry run) and measure it. Raises CorruptionError."""
    state: RecoveredState = recover(fs, root, RecoveryMode.STRICT, dry_run=True)
    wal_dir = posixpath.join(root, WAL_DIR)
    segments = _lsns(fs, wal_dir, WAL_SUFFIX)
    wal_bytes = sum(fs.size(posixpath.join(wal_dir, segment_name(s))) for s in segments)
    live = sum(len(k) + len(v) for k, v in state.table.items())
    report = state.report
    return DirectoryStats(len(state.table), live, state.last_lsn, report.snapshot,
                          report.snapshot_lsn, state.wal_bytes_since_snapshot, len(segments),
                          wal_bytes, report)
