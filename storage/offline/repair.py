"""``repair DIR``: a server start's recovery, without the server.

It first runs recovery as a dry run; only when that finds damage to repair (and does
not refuse) does it run recovery for real, so after ``repair`` a start changes nothing.
Cut bytes are kept in ``*.broken`` by recovery itself.
"""

from __future__ import annotations

from typing import TextIO

from storage.errors import CorruptionError
from storage.fs import FileSystem
from storage.offline.render import Output, recovery_changes
from storage.recovery import RecoveryMode, RecoveryReport, recover


def run(fs: FileSystem, root: str, out: TextIO, *, point_in_time: bool) -> bool:
    """Repair ``root`` and say what changed; False when recovery refuses (nothing changed).

    ``point_in_time``: also give up damage before the log tail and what follows it.
    """
    mode = RecoveryMode.POINT_IN_TIME if point_in_time else RecoveryMode.STRICT
    output = Output(root, out)
    try:
        plan = recover(fs, root, mode, dry_run=True).report
    except CorruptionError as exc:
        _print_refusal(output, exc)
        return False
    if not _damage_to_repair(plan):
        output.line("nothing to repair: no torn tail and no damage")
        return True
    done = recover(fs, root, mode).report
    output.line("repaired; changes made:")
    recovery_changes(output, done, replay=False)
    return True


def _damage_to_repair(report: RecoveryReport) -> bool:
    # Trimming preallocated zeros, removing a frameless newest segment or a leftover
    # *.tmp is tidying that every start does; repair runs for damage only (and then
    # does the tidying too, and says so).
    cut_data = any(cut.kept_in is not None for cut in report.cuts)
    return cut_data or bool(report.dropped or report.broken_snapshots)


def _print_refusal(output: Output, exc: CorruptionError) -> None:
    output.line(f"not repaired, nothing changed: {output.place(exc.path, exc.offset)}: "
                f"{exc.reason}")
    output.line("this is damage before the log tail, which may hold acknowledged writes; "
                "`repair --point-in-time` keeps everything before it and sets the rest aside")
