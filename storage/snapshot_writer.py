"""Writing a snapshot in the background: a forked child, or a thread with a copy.

Fork (the default, like Redis BGSAVE): the committer thread forks between two commit
groups, so the child's copy-on-write image of the table is exactly the state at one
LSN. The child writes the snapshot and exits; the parent only pays for ``fork()``
itself (copying page tables, measured in the README) and keeps serving. Children are
waited for by one `ForkReaper` thread for the engine's life: a thread started per
checkpoint would make the committer wait, commits paused, until the new thread got the
GIL from a busy event loop.

Thread: the table is copied (``dict(table)``) between two groups and a thread writes
the copy through the filesystem seam. Slower to start for large tables, but it works
with any ``FileSystem`` (tests, the power-loss explorer).

When to write one, and what happens after, is ``storage.checkpoint``'s business.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from storage.fs import FileSystem, OsFileSystem
from storage.keyspace import Keyspace
from storage.snapshot import Contents, write_snapshot


class CheckpointMode(Enum):
    """How snapshots are written."""

    FORK = "fork"
    THREAD = "thread"


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """Reported when a background checkpoint finishes."""

    lsn: int
    ok: bool
    error: str = ""


Done = Callable[[CheckpointResult], None]


class ForkReaper:
    """Waits for checkpoint children on one long-lived thread and reports each one."""

    def __init__(self) -> None:
        self._children: queue.SimpleQueue[tuple[int, int, Done] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="walkv-checkpoint-reaper",
                                        daemon=True)
        self._thread.start()

    def watch(self, pid: int, lsn: int, done: Done) -> None:
        """Call ``done`` (on the reaper thread) when child ``pid`` has exited."""
        self._children.put((pid, lsn, done))

    def stop(self) -> None:
        """End the thread once the children handed over so far are reaped."""
        self._children.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (child := self._children.get()) is not None:
            _reap(*child)


class SnapshotWriter:
    """Starts background snapshot writes in one mode (and, for fork, owns the reaper)."""

    def __init__(self, mode: CheckpointMode, fs: FileSystem, root: str) -> None:
        if mode is CheckpointMode.FORK and not isinstance(fs, OsFileSystem):
            raise ValueError("a forked child writes through the real filesystem only")
        self.mode = mode
        self._fs = fs
        self._root = root
        self._reaper = ForkReaper() if mode is CheckpointMode.FORK else None

    def start(self, lsn: int, keyspace: Keyspace, done: Done) -> None:
        """Start writing the snapshot of ``keyspace`` at ``lsn`` in the background.

        Must be called while ``keyspace`` is not being modified (between commit groups).
        ``done`` is called from another thread when the snapshot is durable or failed.
        """
        if self._reaper is not None:
            _fork_snapshot(self._root, lsn, keyspace, done, self._reaper)
        else:
            copy = contents_of(keyspace, copy=True)
            threading.Thread(target=_write_in_thread, args=(self._fs, self._root, lsn, copy,
                                                            done),
                             name="walkv-checkpoint", daemon=True).start()

    def stop(self) -> None:
        """Stop the reaper once the children started so far are reaped."""
        if self._reaper is not None:
            self._reaper.stop()


def contents_of(keyspace: Keyspace, *, copy: bool) -> Contents:
    """What a snapshot of ``keyspace`` holds (copied, for a writer on another thread)."""
    if copy:
        values, expires, clock = keyspace.image()
        return Contents(values, expires, clock)
    return Contents(keyspace.values, keyspace.expires, keyspace.clock_floor)


def _write_in_thread(fs: FileSystem, root: str, lsn: int, table: Contents,
                     done: Done) -> None:
    try:
        write_snapshot(fs, root, lsn, table)
    except OSError as exc:
        done(CheckpointResult(lsn, False, str(exc)))
        return
    done(CheckpointResult(lsn, True))


def _fork_snapshot(root: str, lsn: int, keyspace: Keyspace, done: Done,
                   reaper: ForkReaper) -> None:
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() with threads; the child only runs
        # _child_main below, which takes no lock another thread could hold.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child_main(root, lsn, keyspace)
    reaper.watch(pid, lsn, done)


def _child_main(root: str, lsn: int, keyspace: Keyspace) -> None:  # pragma: no cover
    code = 1
    try:
        gc.disable()  # collecting would touch every object and copy every page
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Keep only stdio: the listening socket and the lock stay with the parent.
        os.closerange(3, _max_fd())
        # Sorting the keys for the file's ascending order costs the child's CPU, not
        # the server's; it is what lets recovery build the key order without a sort.
        values = keyspace.values
        contents = Contents({k: values[k] for k in sorted(values)}, keyspace.expires,
                            keyspace.clock_floor, in_order=True)
        write_snapshot(OsFileSystem(), root, lsn, contents)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the child must always _exit
        with contextlib.suppress(OSError):
            os.write(2, f"walkv: checkpoint child failed: {exc!r}\n".encode())
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _reap(pid: int, lsn: int, done: Done) -> None:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        done(CheckpointResult(lsn, True))
    else:
        done(CheckpointResult(lsn, False, f"checkpoint child exited with status {code}"))
