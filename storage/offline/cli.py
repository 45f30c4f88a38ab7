"""``python -m storage`` (also ``walkv-storage``): look at and repair a stopped server's
working directory.

    check DIR                       verify every snapshot and WAL frame; exit 1 on damage
    dump DIR [--from-lsn N] [--json] [--values]
                                    print frames and their operations
    repair DIR [--point-in-time]    cut a torn tail (the bytes are kept in *.broken)
    stats DIR [--json]              keys, live bytes, WAL since the snapshot, snapshot age

Every verb takes the directory's ``LOCK`` first, the way a server does, so it refuses
(exit 2, one line) while a server runs there, and a server cannot start meanwhile.
Exit status: 0 fine (or repaired), 1 damage found (check) or repair refused, 2 the
tool could not run (usage, lock held, not a walkv directory, I/O error).

The judgements come from the code a server start runs (``storage/inspection.py``
says which); ``repair`` *is* a server start's recovery, without the server.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import posixpath
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from enum import Enum
from typing import Any, NoReturn, TextIO

from storage.errors import CorruptionError, LockHeldError
from storage.format import LOCK_NAME, SNAP_DIR, WAL_DIR, Op, Record
from storage.fs import OsFileSystem
from storage.offline.inspection import (
    CheckReport,
    DirectoryStats,
    DumpedEnd,
    DumpedFrame,
    SegmentInfo,
    check_directory,
    describe_other_file,
    directory_stats,
    dump_frames,
)
from storage.recovery import RecoveryMode, RecoveryReport, recover
from storage.wal.scan import Verdict

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_CANNOT_RUN = 2

PROG = "walkv-storage"


class _UsageError(Exception):
    """The tool cannot run on what it was given (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        sys.exit(EXIT_CANNOT_RUN)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser with one sub-command per verb."""
    p = _Parser(prog=PROG, description="Inspect or repair a stopped walkv working directory.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    c = sub.add_parser("check", help="verify every snapshot and WAL frame (exit 1 on damage)")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--json", action="store_true", help="one JSON object instead of text")
    d = sub.add_parser("dump", help="print WAL frames and their operations")
    d.add_argument("dir", metavar="DIR")
    d.add_argument("--from-lsn", type=int, default=0, metavar="N",
                   help="start at the frame holding LSN N")
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.add_argument("--values", action="store_true", help="print values, not only their sizes")
    r = sub.add_parser("repair", help="cut a torn tail, keeping the cut bytes in *.broken")
    r.add_argument("dir", metavar="DIR")
    r.add_argument("--point-in-time", action="store_true",
                   help="also cut damage before the tail: keep the longest valid prefix, set "
                        "the rest aside (loses acknowledged writes after the damage)")
    s = sub.add_parser("stats", help="keys, live bytes, WAL since the snapshot, snapshot age")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--json", action="store_true", help="one JSON object instead of text")
    return p


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run one verb; returns the exit status (errors become one line on stderr)."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    fs = OsFileSystem()
    root = args.dir
    try:
        _require_walkv_dir(root)
        lock = fs.lock(posixpath.join(root, LOCK_NAME))
    except LockHeldError as exc:
        return _fail(f"{root} is in use: {exc.path} is held by a running walkv server "
                     f"({exc.holder}); stop it first")
    except _UsageError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot lock {root}: {exc.strerror or exc}")
    try:
        return _VERBS[args.verb](fs, args, out)
    except BrokenPipeError:
        # The reader went away (`dump | head`): not an error worth a message.
        _silence_stdout()
        return 0
    except OSError as exc:
        return _fail(f"{getattr(exc, 'filename', None) or root}: {exc.strerror or exc}")
    finally:
        lock.release()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so interpreter shutdown does not flush into the dead pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return EXIT_CANNOT_RUN


def _require_walkv_dir(root: str) -> None:
    if not os.path.isdir(root):
        raise _UsageError(f"{root} is not a directory")
    if not any(os.path.isdir(os.path.join(root, d)) for d in (WAL_DIR, SNAP_DIR)):
        raise _UsageError(f"{root} is not a walkv working directory (no {WAL_DIR}/ or "
                          f"{SNAP_DIR}/ in it)")


# -- check ------------------------------------------------------------------------------


def _check(fs: OsFileSystem, args: argparse.Namespace, out: TextIO) -> int:
    report = check_directory(fs, args.dir)
    if args.json:
        out.write(_json({**asdict(report), "ok": report.ok}) + "\n")
    else:
        _Text(args.dir, out).check(report)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


# -- dump -------------------------------------------------------------------------------


def _dump(fs: OsFileSystem, args: argparse.Namespace, out: TextIO) -> int:
    text = _Text(args.dir, out)
    for item in dump_frames(fs, args.dir, args.from_lsn):
        if args.json:
            out.write(_json(_dump_object(args.dir, item, args.values, args.from_lsn)) + "\n")
        elif isinstance(item, DumpedFrame):
            text.frame(item, args.values, args.from_lsn)
        else:
            text.dump_end(item)
    return EXIT_OK


def _dump_object(root: str, item: DumpedFrame | DumpedEnd, values: bool,
                 from_lsn: int) -> dict[str, Any]:
    path = os.path.relpath(item.path, root)
    if isinstance(item, DumpedEnd):
        o = item.outcome
        return {"segment": path, "end": o.offset, "verdict": o.verdict.value,
                "reason": o.reason, "tail_bytes": item.tail_bytes,
                "tail_nonzero": item.tail_nonzero}
    records = []
    for lsn, (op, key, value) in _numbered(item.first_lsn, item.records, from_lsn):
        rec: dict[str, Any] = {"lsn": lsn, "op": Op(op).name, **_bytes_field("key", key)}
        if value is not None:
            rec["value_size"] = len(value)
            if values:
                rec.update(_bytes_field("value", value))
        records.append(rec)
    return {"segment": path, "offset": item.offset, "size": item.size,
            "first_lsn": item.first_lsn, "records": records}


def _numbered(first_lsn: int, records: list[Record],
              from_lsn: int) -> Iterator[tuple[int, Record]]:
    for i, record in enumerate(records):
        if first_lsn + i >= from_lsn:
            yield first_lsn + i, record


def _bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` for UTF-8, else ``{name_b64: base64}``: JSON-safe and exact."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


# -- repair -----------------------------------------------------------------------------


def _repair(fs: OsFileSystem, args: argparse.Namespace, out: TextIO) -> int:
    mode = RecoveryMode.POINT_IN_TIME if args.point_in_time else RecoveryMode.STRICT
    text = _Text(args.dir, out)
    try:
        plan = recover(fs, args.dir, mode, dry_run=True).report
    except CorruptionError as exc:
        text.line(f"not repaired, nothing changed: {text.rel(exc.path)} at byte {exc.offset}: "
                  f"{exc.reason}")
        text.line("this is damage before the log tail, which may hold acknowledged writes; "
                  "`repair --point-in-time` keeps everything before it and sets the rest aside")
        return EXIT_PROBLEMS
    if not _damage_to_repair(plan):
        text.line("nothing to repair: no torn tail and no damage")
        return EXIT_OK
    done = recover(fs, args.dir, mode).report
    text.line("repaired; changes made:")
    text.changes(done, replay=False)
    return EXIT_OK


def _damage_to_repair(report: RecoveryReport) -> bool:
    # Trimming preallocated zeros, removing a frameless newest segment or a leftover
    # *.tmp is tidying that every start does; repair runs for damage only (and then
    # does the tidying too, and says so).
    cut_data = any(cut.kept_in is not None for cut in report.cuts)
    return cut_data or bool(report.dropped or report.broken_snapshots)


def _changes(report: RecoveryReport) -> bool:
    return bool(report.cuts or report.dropped or report.broken_snapshots
                or report.removed_temp_files or report.removed_empty_segments)


# -- stats ------------------------------------------------------------------------------


def _stats(fs: OsFileSystem, args: argparse.Namespace, out: TextIO) -> int:
    text = _Text(args.dir, out)
    try:
        stats = directory_stats(fs, args.dir)
    except CorruptionError as exc:
        text.line(f"a server would refuse to start: {text.rel(exc.path)} at byte {exc.offset}: "
                  f"{exc.reason} (see `check`)")
        return EXIT_PROBLEMS
    age = _age(stats.snapshot)
    if args.json:
        obj = {**asdict(stats), "snapshot_age_seconds": age}
        out.write(_json(obj) + "\n")
    else:
        text.stats(stats, age)
    return EXIT_OK


def _age(path: str | None) -> float | None:
    # Only the offline tool asks for a file's age, so this stays outside the seam.
    if path is None:
        return None
    try:
        return max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        return None


_VERBS: dict[str, Callable[[OsFileSystem, argparse.Namespace, TextIO], int]] = {
    "check": _check,
    "dump": _dump,
    "repair": _repair,
    "stats": _stats,
}


# -- output -----------------------------------------------------------------------------


def _json(obj: object) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=False)


def _json_default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _show(data: bytes) -> str:
    """A key or value for a terminal: plain when printable UTF-8, else a bytes literal."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return text if text.isprintable() and text.strip() == text and text else repr(data)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


class _Text:
    """Human-readable output, paths relative to the working directory."""

    def __init__(self, root: str, out: TextIO) -> None:
        self.root = root
        self.out = out

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def strip(self, text: str) -> str:
        """``text`` with the working directory's prefix removed from the paths in it."""
        return text.replace(self.root.rstrip("/") + "/", "")

    # check
    def check(self, report: CheckReport) -> None:
        self.line(f"walkv check {self.root}")
        self.line(f"snapshots: {len(report.snapshots)}")
        for snap in report.snapshots:
            state = (f"{_n(snap.keys, 'key')}  ok" if snap.keys is not None
                     else f"DAMAGED: {snap.error}")
            self.line(f"  {self.rel(snap.path)}  LSN {snap.lsn}  {_n(snap.size, 'byte')}  {state}")
        self.line(f"WAL segments: {len(report.segments)}")
        for seg in report.segments:
            self.line(f"  {self.rel(seg.path)}  {self._lsn_range(seg)}  {_n(seg.frames, 'frame')}"
                      f"  {_n(seg.size, 'byte')}  {self._ending(seg)}")
        for path in report.other_files:
            self.line(f"other file: {self.rel(path)}: {describe_other_file(path)}")
        self._torn_tail(report.torn_tail)
        if report.plan is not None:
            self.line("a server start would:")
            self.changes(report.plan, replay=True)
        self._problems(report)

    @staticmethod
    def _lsn_range(seg: SegmentInfo) -> str:
        if seg.last_lsn < seg.first_lsn:
            return f"LSN {seg.first_lsn} (no records)"
        if seg.last_lsn == seg.first_lsn:
            return f"LSN {seg.first_lsn}"
        return f"LSN {seg.first_lsn}-{seg.last_lsn}"

    def _ending(self, seg: SegmentInfo) -> str:
        where = f"at byte {seg.end_offset}"
        if seg.verdict is Verdict.CLEAN:
            return "clean"
        if seg.verdict is Verdict.ZERO_TAIL:
            return f"then {_n(seg.tail_bytes, 'byte')} of zeros {where} (preallocated)"
        if seg.verdict is Verdict.DAMAGED:
            return f"DAMAGED {where}: {seg.reason}"
        return f"torn {where}"

    def _torn_tail(self, seg: SegmentInfo | None) -> None:
        if seg is None:
            self.line("torn tail: none")
            return
        self.line(f"torn tail: {self.rel(seg.path)} at byte {seg.end_offset}: "
                  f"{_n(seg.tail_bytes, 'byte')} after the last valid frame, "
                  f"{seg.tail_nonzero:,} of them non-zero ({seg.reason}); never acknowledged, "
                  "a start or `repair` cuts it")

    def _problems(self, report: CheckReport) -> None:
        if report.ok:
            self.line("problems: none")
        else:
            self.line(f"problems: {len(report.problems)}")
            for p in report.problems:
                self.line(f"  {self.rel(p.path)} at byte {p.offset}: {p.reason}")
        if report.refusal is not None:
            r = report.refusal
            self.line(f"a server start would refuse: {self.rel(r.path)} at byte {r.offset}: "
                      f"{r.reason}")
        count = _n(len(report.problems), "problem")
        self.line("result: OK" if report.ok else f"result: DAMAGED ({count})")

    def changes(self, report: RecoveryReport, replay: bool) -> None:
        """What recovery did or would do, one line per change (``replay``: and what it
        would load and replay)."""
        if replay and report.snapshot:
            self.line(f"  load snapshot {self.rel(report.snapshot)} (LSN {report.snapshot_lsn})")
        if replay:
            self.line(f"  replay {_n(report.records_replayed, 'record')} "
                      f"({_n(report.bytes_replayed, 'frame byte')} read from "
                      f"{_n(report.segments_replayed, 'segment')}), up to LSN "
                      f"{report.last_lsn}: {_n(report.keys, 'key')}")
        for path in report.removed_temp_files:
            self.line(f"  remove unfinished snapshot {self.rel(path)}")
        for entry in report.broken_snapshots:
            self.line(f"  set aside damaged snapshot {self.strip(entry)}")
        for cut in report.cuts:
            kept = (f"bytes kept in {self.rel(cut.kept_in)}" if cut.kept_in
                    else "all zeros, nothing to keep")
            self.line(f"  cut {_n(cut.length, 'byte')} at {self.rel(cut.path)}:{cut.offset} "
                      f"({cut.reason}; {kept})")
        for entry in report.dropped:
            self.line(f"  DROPPED (point-in-time): {self.strip(entry)}")
        for path in report.removed_empty_segments:
            self.line(f"  remove {self.rel(path)} (holds no frame; a start creates it afresh)")

    # dump
    def frame(self, frame: DumpedFrame, values: bool, from_lsn: int) -> None:
        last = frame.first_lsn + len(frame.records) - 1
        lsns = f"LSN {frame.first_lsn}" + (f"-{last}" if last != frame.first_lsn else "")
        self.line(f"{self.rel(frame.path)}@{frame.offset}  {lsns}  "
                  f"{_n(len(frame.records), 'record')}  {_n(frame.size, 'byte')}")
        for lsn, (op, key, value) in _numbered(frame.first_lsn, frame.records, from_lsn):
            name = Op(op).name
            if value is None:
                self.line(f"  {lsn:>8}  {name:<6}  {_show(key)}" if op != Op.CLEAR
                          else f"  {lsn:>8}  {name}")
                continue
            shown = f" = {_show(value)}" if values else ""
            self.line(f"  {lsn:>8}  {name:<6}  {_show(key)}  ({_n(len(value), 'byte')}){shown}")

    def dump_end(self, end: DumpedEnd) -> None:
        o = end.outcome
        what = {Verdict.ZERO_TAIL: "zeros (preallocated space)",
                Verdict.TORN_TAIL: "torn tail", Verdict.TORN_HEADER: "torn segment header",
                Verdict.DAMAGED: "DAMAGED"}[o.verdict]
        self.line(f"{self.rel(end.path)}@{o.offset}  end of valid frames: {what}: "
                  f"{_n(end.tail_bytes, 'byte')} follow, {end.tail_nonzero:,} non-zero"
                  + (f" ({o.reason})" if o.verdict is not Verdict.ZERO_TAIL else ""))

    # stats
    def stats(self, s: DirectoryStats, age: float | None) -> None:
        self.line(f"keys: {s.keys:,}")
        self.line(f"live bytes: {s.live_bytes:,} (keys + values)")
        self.line(f"last LSN: {s.last_lsn}")
        if s.snapshot is None:
            self.line("snapshot: none (a start replays the whole WAL)")
        else:
            when = f", written {_duration(age)} ago" if age is not None else ""
            self.line(f"snapshot: {self.rel(s.snapshot)} (LSN {s.snapshot_lsn}{when})")
        self.line(f"WAL bytes since the last snapshot: {s.wal_bytes_since_snapshot:,} "
                  f"({_n(s.plan.records_replayed, 'record')} to replay)")
        self.line(f"WAL on disk: {_n(s.wal_segments, 'segment')}, {_n(s.wal_bytes, 'byte')}")
        if _changes(s.plan):
            self.line("a server start would also:")
            self.changes(s.plan, replay=False)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
