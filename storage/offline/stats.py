"""``stats DIR``: the state a start would recover, measured.

The directory is recovered in memory by recovery's own dry run, so the numbers are
what a start would load; live bytes are computed only here, the server does not track
them.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import TextIO

from storage.errors import CorruptionError
from storage.fs import FileSystem
from storage.offline.files import segment_files
from storage.offline.render import Output, has_changes, plural, recovery_changes
from storage.recovery import RecoveryMode, RecoveryReport, recover


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


def run(fs: FileSystem, root: str, out: TextIO, *, as_json: bool) -> bool:
    """Print the stats of ``root`` (text, or one JSON object); False when a start would
    refuse (then one line says why)."""
    output = Output(root, out)
    try:
        stats = directory_stats(fs, root)
    except CorruptionError as exc:
        output.line(f"a server would refuse to start: {output.place(exc.path, exc.offset)}: "
                    f"{exc.reason} (see `check`)")
        return False
    age = _age(stats.snapshot)
    if as_json:
        output.json({**asdict(stats), "snapshot_age_seconds": age})
    else:
        _print(output, stats, age)
    return True


def directory_stats(fs: FileSystem, root: str) -> DirectoryStats:
    """Recover ``root`` in memory (dry run) and measure it. Raises CorruptionError."""
    state = recover(fs, root, RecoveryMode.STRICT, dry_run=True)
    segments = segment_files(fs, root)
    wal_bytes = sum(fs.size(segment.path) for segment in segments)
    live = sum(len(k) + len(v) for k, v in state.keyspace.values.items())
    report = state.report
    return DirectoryStats(len(state.keyspace), live, state.last_lsn, report.snapshot,
                          report.snapshot_lsn, state.wal_bytes_since_snapshot, len(segments),
                          wal_bytes, report)


def _age(path: str | None) -> float | None:
    # Only the offline tool asks for a file's age, so this stays outside the seam.
    if path is None:
        return None
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None


def _print(output: Output, s: DirectoryStats, age: float | None) -> None:
    output.line(f"keys: {s.keys:,}")
    output.line(f"live bytes: {s.live_bytes:,} (keys + values)")
    output.line(f"last LSN: {s.last_lsn}")
    if s.snapshot is None:
        output.line("snapshot: none (a start replays the whole WAL)")
    else:
        when = f", written {_duration(age)} ago" if age is not None else ""
        output.line(f"snapshot: {output.rel(s.snapshot)} (LSN {s.snapshot_lsn}{when})")
    output.line(f"WAL bytes since the last snapshot: {s.wal_bytes_since_snapshot:,} "
                f"({plural(s.plan.records_replayed, 'record')} to replay)")
    output.line(f"WAL on disk: {plural(s.wal_segments, 'segment')}, "
                f"{plural(s.wal_bytes, 'byte')}")
    if has_changes(s.plan):
        output.line("a server start would also:")
        recovery_changes(output, s.plan, replay=False)


def _duration(seconds: float) -> str:
    """A file's age in the largest unit that still reads as a small number."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
