"""Output shared by the verbs: paths relative to the working directory, counts, JSON,
and the lines saying what recovery did or would do (``check``, ``repair``, ``stats``).

Each verb's own lines live in its module; what more than one verb prints lives here,
so a change, a count or a place in a file reads the same whichever verb shows it.
"""

from __future__ import annotations

import json
import os
from enum import Enum
from typing import TextIO

from storage.recovery import RecoveryReport


def plural(count: int, word: str) -> str:
    """``count`` with thousands separators and ``word``, plural unless it is one."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def to_json(obj: object) -> str:
    """One line of JSON; enums as their values, bytes as text (never an exception)."""
    return json.dumps(obj, default=_json_default, sort_keys=False)


def _json_default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Output:
    """Where a verb writes: ``out``, with paths shown relative to the working directory."""

    def __init__(self, root: str, out: TextIO) -> None:
        self.root = root
        self.out = out

    def line(self, text: str = "") -> None:
        """Write ``text`` and a newline."""
        self.out.write(text + "\n")

    def json(self, obj: object) -> None:
        """Write ``obj`` as one line of JSON."""
        self.line(to_json(obj))

    def rel(self, path: str) -> str:
        """``path`` relative to the working directory."""
        return os.path.relpath(path, self.root)

    def strip(self, text: str) -> str:
        """``text`` with the working directory's prefix removed from the paths in it."""
        return text.replace(self.root.rstrip("/") + "/", "")

    def place(self, path: str, offset: int) -> str:
        """A byte in a file, the way every verb names one: ``wal/...wal at byte N``."""
        return f"{self.rel(path)} at byte {offset}"


def recovery_changes(output: Output, report: RecoveryReport, replay: bool) -> None:
    """What recovery did or would do, one indented line per change (``replay``: first
    what it would load and replay)."""
    if replay:
        _replay(output, report)
    for path in report.removed_temp_files:
        output.line(f"  remove unfinished snapshot {output.rel(path)}")
    for entry in report.broken_snapshots:
        output.line(f"  set aside damaged snapshot {output.strip(entry)}")
    for cut in report.cuts:
        kept = (f"bytes kept in {output.rel(cut.kept_in)}" if cut.kept_in
                else "all zeros, nothing to keep")
        output.line(f"  cut {plural(cut.length, 'byte')} at {output.rel(cut.path)}:{cut.offset} "
                    f"({cut.reason}; {kept})")
    for entry in report.dropped:
        output.line(f"  DROPPED (point-in-time): {output.strip(entry)}")
    for path in report.removed_empty_segments:
        output.line(f"  remove {output.rel(path)} (holds no frame; a start creates it afresh)")


def has_changes(report: RecoveryReport) -> bool:
    """Whether ``recovery_changes`` (without ``replay``) prints any line for ``report``."""
    return bool(report.cuts or report.dropped or report.broken_snapshots
                or report.removed_temp_files or report.removed_empty_segments)


def _replay(output: Output, report: RecoveryReport) -> None:
    if report.snapshot:
        output.line(f"  load snapshot {output.rel(report.snapshot)} (LSN {report.snapshot_lsn})")
    output.line(f"  replay {plural(report.records_replayed, 'record')} "
                f"({plural(report.bytes_replayed, 'frame byte')} read from "
                f"{plural(report.segments_replayed, 'segment')}), up to LSN "
                f"{report.last_lsn}: {plural(report.keys, 'key')}")
