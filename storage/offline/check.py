"""``check DIR``: verify every snapshot and every WAL frame, change nothing.

Every judgement is made by the code a server start runs:

* snapshots are verified by ``snapshot.read_snapshot``;
* segments are verified by ``scan.SegmentScan`` (checksums, LSN continuity, torn
  tail or corruption), each on its own (``files.SegmentReading``), with the LSN
  chain from the oldest segment to the newest checked here;
* "what would a start do" is ``recovery.recover(..., dry_run=True)`` itself: its
  report (or its refusal) is shown as it is.

Unlike recovery, ``check_directory`` does not stop at the first damage: it verifies
every snapshot and every segment, so one run lists every problem.
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field
from typing import TextIO

from storage.errors import CorruptionError, SnapshotDamagedError
from storage.format import (
    BROKEN_SUFFIX,
    SNAP_DIR,
    SNAP_SUFFIX,
    TMP_SUFFIX,
    WAL_DIR,
    WAL_SUFFIX,
    parse_name,
)
from storage.fs import FileSystem
from storage.offline.files import SegmentFile, SegmentReading, existing_lsns, segment_files
from storage.offline.render import Output, plural, recovery_changes
from storage.recovery import RecoveryMode, RecoveryReport, recover
from storage.snapshot import read_snapshot, snapshot_path
from storage.wal.scan import Verdict


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


def run(fs: FileSystem, root: str, out: TextIO, *, as_json: bool) -> bool:
    """Check ``root`` and print the report (text, or one JSON object); True if no damage."""
    report = check_directory(fs, root)
    output = Output(root, out)
    if as_json:
        output.json({**asdict(report), "ok": report.ok})
    else:
        _print(output, report)
    return report.ok


# -- gathering -------------------------------------------------------------------------


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
    for lsn in existing_lsns(fs, posixpath.join(root, SNAP_DIR), SNAP_SUFFIX):
        path = snapshot_path(root, lsn)
        size = fs.size(path)
        try:
            keys = len(read_snapshot(fs, path, lsn).values)
        except SnapshotDamagedError as exc:
            report.snapshots.append(SnapshotInfo(path, lsn, size, None, str(exc)))
            report.add_problem(Problem(path, exc.offset, f"damaged snapshot: {exc}"))
            continue
        report.snapshots.append(SnapshotInfo(path, lsn, size, keys))


def _check_segments(fs: FileSystem, root: str, report: CheckReport) -> None:
    expected: int | None = None
    for segment in segment_files(fs, root):
        first, path = segment.first_lsn, segment.path
        if expected is not None and expected != first:
            report.add_problem(Problem(
                path, 0, f"segment starts at LSN {first}, expected {expected}: "
                "the segment holding the LSNs between is missing"))
        info = inspect_segment(fs, segment)
        report.segments.append(info)
        if info.verdict is Verdict.DAMAGED:
            report.add_problem(Problem(path, info.end_offset, info.reason + _why_not_torn(
                info, newest=segment.newest)))
            expected = None  # judge the next segment on its own
        else:
            expected = info.last_lsn + 1


def _why_not_torn(info: SegmentInfo, newest: bool) -> str:
    if info.end_offset == 0:
        return ""
    if newest:
        return " (a valid frame follows, so this is corruption, not a torn tail)"
    return " (in an older segment, so this is corruption, not a torn tail)"


def inspect_segment(fs: FileSystem, segment: SegmentFile) -> SegmentInfo:
    """Verify one segment on its own (its frames must continue from its name's LSN)."""
    reading = SegmentReading(fs, segment)
    frames = records = 0
    for frame in reading.frames():
        frames += 1
        records += frame.count
    outcome = reading.outcome
    return SegmentInfo(segment.path, segment.first_lsn, reading.next_lsn - 1,
                       len(reading.data), frames, records, outcome.verdict, outcome.offset,
                       outcome.reason, reading.tail_bytes, reading.tail_nonzero)


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


def describe_other_file(path: str) -> str:
    """What a file that is not a segment or snapshot is, in a few words."""
    if path.endswith(BROKEN_SUFFIX):
        return "set aside (damaged or cut bytes, kept for inspection)"
    if path.endswith(TMP_SUFFIX):
        return "unfinished snapshot (a start removes it)"
    return "not a walkv file (ignored)"


# -- text ------------------------------------------------------------------------------


def _print(output: Output, report: CheckReport) -> None:
    output.line(f"walkv check {report.root}")
    output.line(f"snapshots: {len(report.snapshots)}")
    for snap in report.snapshots:
        output.line(_snapshot_line(output, snap))
    output.line(f"WAL segments: {len(report.segments)}")
    for seg in report.segments:
        output.line(f"  {output.rel(seg.path)}  {_lsn_range(seg)}  {plural(seg.frames, 'frame')}"
                    f"  {plural(seg.size, 'byte')}  {_ending(seg)}")
    for path in report.other_files:
        output.line(f"other file: {output.rel(path)}: {describe_other_file(path)}")
    _print_torn_tail(output, report.torn_tail)
    if report.plan is not None:
        output.line("a server start would:")
        recovery_changes(output, report.plan, replay=True)
    _print_problems(output, report)


def _snapshot_line(output: Output, snap: SnapshotInfo) -> str:
    state = (f"{plural(snap.keys, 'key')}  ok" if snap.keys is not None
             else f"DAMAGED: {snap.error}")
    return f"  {output.rel(snap.path)}  LSN {snap.lsn}  {plural(snap.size, 'byte')}  {state}"


def _lsn_range(seg: SegmentInfo) -> str:
    if seg.last_lsn < seg.first_lsn:
        return f"LSN {seg.first_lsn} (no records)"
    if seg.last_lsn == seg.first_lsn:
        return f"LSN {seg.first_lsn}"
    return f"LSN {seg.first_lsn}-{seg.last_lsn}"


def _ending(seg: SegmentInfo) -> str:
    where = f"at byte {seg.end_offset}"
    if seg.verdict is Verdict.CLEAN:
        return "clean"
    if seg.verdict is Verdict.ZERO_TAIL:
        return f"then {plural(seg.tail_bytes, 'byte')} of zeros {where} (preallocated)"
    if seg.verdict is Verdict.DAMAGED:
        return f"DAMAGED {where}: {seg.reason}"
    return f"torn {where}"


def _print_torn_tail(output: Output, seg: SegmentInfo | None) -> None:
    if seg is None:
        output.line("torn tail: none")
        return
    output.line(f"torn tail: {output.place(seg.path, seg.end_offset)}: "
                f"{plural(seg.tail_bytes, 'byte')} after the last valid frame, "
                f"{seg.tail_nonzero:,} of them non-zero ({seg.reason}); never acknowledged, "
                "a start or `repair` cuts it")


def _print_problems(output: Output, report: CheckReport) -> None:
    if report.ok:
        output.line("problems: none")
    else:
        output.line(f"problems: {len(report.problems)}")
        for p in report.problems:
            output.line(f"  {output.place(p.path, p.offset)}: {p.reason}")
    if report.refusal is not None:
        r = report.refusal
        output.line(f"a server start would refuse: {output.place(r.path, r.offset)}: {r.reason}")
    count = plural(len(report.problems), "problem")
    output.line("result: OK" if report.ok else f"result: DAMAGED ({count})")
