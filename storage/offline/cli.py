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

The judgements come from the code a server start runs (each verb's module says
which); ``repair`` *is* a server start's recovery, without the server. This module is
the command line only: the verbs' work and output are in ``check``, ``dump``,
``repair`` and ``stats`` beside it.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO

from storage.errors import LockHeldError
from storage.format import LOCK_NAME, SNAP_DIR, WAL_DIR
from storage.fs import FileSystem, OsFileSystem
from storage.offline import check, dump, repair, stats

EXIT_OK = 0
EXIT_PROBLEMS = 1
"""A verb found damage (``check``) or was refused (``repair``, ``stats``)."""
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
        return EXIT_OK if _VERBS[args.verb](fs, args, out) else EXIT_PROBLEMS
    except BrokenPipeError:
        # The reader went away (`dump | head`): not an error worth a message.
        _silence_stdout()
        return EXIT_OK
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


# -- the verbs: options in, whether all was well out -----------------------------------


def _check(fs: FileSystem, args: argparse.Namespace, out: TextIO) -> bool:
    return check.run(fs, args.dir, out, as_json=args.json)


def _dump(fs: FileSystem, args: argparse.Namespace, out: TextIO) -> bool:
    return dump.run(fs, args.dir, out, from_lsn=args.from_lsn, as_json=args.json,
                    values=args.values)


def _repair(fs: FileSystem, args: argparse.Namespace, out: TextIO) -> bool:
    return repair.run(fs, args.dir, out, point_in_time=args.point_in_time)


def _stats(fs: FileSystem, args: argparse.Namespace, out: TextIO) -> bool:
    return stats.run(fs, args.dir, out, as_json=args.json)


_VERBS: dict[str, Callable[[FileSystem, argparse.Namespace, TextIO], bool]] = {
    "check": _check,
    "dump": _dump,
    "repair": _repair,
    "stats": _stats,
}
