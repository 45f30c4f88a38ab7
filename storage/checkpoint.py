"""Checkpoints: when to write a snapshot, starting one, and what follows when it is durable.

Theory of operation
-------------------
A snapshot at LSN s lets a start skip every WAL record up to s. Everything here runs
on the committer thread, between two commit groups, so the table holds exactly the
state at one LSN while a checkpoint starts; only the snapshot's bytes are written
elsewhere (``storage.snapshot_writer``: a forked child or a thread).

1. After each group, ``CheckpointPolicy`` (pure) decides whether enough WAL was
   written since the last snapshot.
2. To start, the log is rotated first: the new segment begins at s + 1, so every older
   segment is wholly covered by the snapshot at s. Then the snapshot is started in
   the background (or, for ``checkpoint()`` and at close, written inline).
3. When the snapshot is durable, segments covered by the *previous* snapshot are
   deleted, with that snapshot's predecessors. Two snapshots stay, so a damaged newest
   one can be replaced by the previous one plus a longer WAL. A failed checkpoint
   deletes nothing and is retried once the policy says so again.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import threading
import time
from dataclasses import dataclass

from storage.committer import Committer
from storage.format import SNAP_DIR
from storage.fs import FileSystem
from storage.keyspace import Keyspace
from storage.snapshot import snapshot_path, write_snapshot
from storage.snapshot_writer import CheckpointResult, SnapshotWriter, contents_of
from storage.wal.log import Log

log = logging.getLogger("walkv.storage")


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """Decides when to checkpoint. Pure: no clocks, no I/O."""

    wal_bytes: int
    """Checkpoint once this many WAL bytes were written since the last snapshot."""

    def due(self, wal_bytes_since_snapshot: int, in_progress: bool) -> bool:
        """Whether a checkpoint should start now."""
        return not in_progress and self.wal_bytes > 0 and wal_bytes_since_snapshot >= self.wal_bytes


@dataclass(frozen=True, slots=True)
class CheckpointStats:
    """Checkpoints and snapshots as of one moment (see ``Checkpointer.stats``)."""

    snapshots: tuple[int, ...]
    """LSNs of the snapshots on disk, ascending."""
    wal_bytes_since_snapshot: int
    running: bool
    completed: int
    failed: int
    last_error: str
    last_start_pause_seconds: float
    """How long commits paused to start the last checkpoint (rotation, then fork/copy)."""
    last_duration_seconds: float
    """Start to durable, for the last completed checkpoint."""
    last_bytes: int
    """Size of the last snapshot written."""
    last_written_at: float | None
    """``time.time()`` when this process last completed a snapshot."""


class Checkpointer:
    """Starts checkpoints and records their results (see the module docstring).

    Every method but ``wait_idle`` and ``stats`` runs on the committer thread.
    """

    def __init__(self, fs: FileSystem, root: str, log_: Log, keyspace: Keyspace,
                 committer: Committer, writer: SnapshotWriter, policy: CheckpointPolicy,
                 snapshots: list[int], wal_bytes_since_snapshot: int) -> None:
        self._fs = fs
        self._root = root
        self._log = log_
        self._keyspace = keyspace
        self._writer = writer
        self._policy = policy
        self._committer = committer
        self._snapshots = list(snapshots)
        self._bytes_at_snapshot = -wal_bytes_since_snapshot
        self._running = False
        self._idle = threading.Event()
        self._idle.set()
        self._completed = 0
        self._failed = 0
        self._last_error = ""
        self._last_start_pause = 0.0
        self._started_at = 0.0
        self._last_duration = 0.0
        self._last_bytes = 0
        self._last_written_at: float | None = None

    # -- after every commit group ----------------------------------------------------
    def after_commit(self) -> None:
        """Rotate a full segment; start a checkpoint when the policy says it is due."""
        if self._log.wants_rotation():
            self._rotate()
        since = self._log.bytes_written - self._bytes_at_snapshot
        if self._policy.due(since, self._running):
            self._start_background()

    def _rotate(self) -> bool:
        control = self._committer
        before = self._log.current_path
        try:
            self._log.rotate(control.next_lsn)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # NoSpaceError too: the old segment goes on
                log.warning("WAL rotation postponed: no space for a new segment")
                return False
            control.fail(f"WAL rotation failed: {exc}")
            return False
        if self._log.current_path != before:
            log.info("WAL rotated: new segment %s from LSN %d (%d segments)",
                     posixpath.basename(self._log.current_path), control.next_lsn,
                     len(self._log.segments), extra=_event("rotation"))
        return True

    def _prepare(self) -> int | None:
        """Rotate so every older segment is covered by a snapshot at the last LSN.

        Returns that LSN, or None when there is nothing new to snapshot or the log
        cannot rotate now.
        """
        control = self._committer
        lsn = control.next_lsn - 1
        if lsn == 0 or control.failed is not None:
            return None
        if self._snapshots and self._snapshots[-1] >= lsn:
            return None
        if not self._rotate():
            return None
        self._started_at = time.monotonic()
        return lsn

    def _start_background(self) -> None:
        started = time.perf_counter()
        lsn = self._prepare()
        if lsn is None:
            return
        rotated = time.perf_counter()
        self._bytes_at_snapshot = self._log.bytes_written
        self._running = True
        self._idle.clear()
        self._writer.start(lsn, self._keyspace, self._finished)
        done = time.perf_counter()
        self._last_start_pause = done - started
        log.info("checkpoint started at LSN %d (%d keys, %s; commits paused %.1f ms: "
                 "WAL rotation %.1f, start %.1f)", lsn, len(self._keyspace),
                 self._writer.mode.value, self._last_start_pause * 1000,
                 (rotated - started) * 1000, (done - rotated) * 1000,
                 extra=_event("checkpoint_start", lsn=lsn))

    def _finished(self, result: CheckpointResult) -> None:
        # On the reaper or writer thread: the bookkeeping belongs to the committer's.
        self._committer.post(lambda: self._record(result))
        self._idle.set()

    def _record(self, result: CheckpointResult) -> None:
        self._running = False
        if not result.ok:
            self._failed += 1
            self._last_error = result.error
            log.error("checkpoint at LSN %d failed: %s", result.lsn, result.error,
                      extra=_event("checkpoint_failed", lsn=result.lsn))
            return
        self._written(result.lsn)

    # -- a snapshot now ----------------------------------------------------------------
    def write_now(self) -> None:
        """Write a snapshot of the current state inline (committer thread, between groups).

        An OSError (the snapshot did not fit, say) is raised to the caller; the log
        is unaffected.
        """
        lsn = self._prepare()
        if lsn is None:
            return
        covered = self._log.bytes_written
        write_snapshot(self._fs, self._root, lsn, contents_of(self._keyspace, copy=False))
        # Only now: a snapshot that failed covers nothing, and the policy retries soon.
        self._bytes_at_snapshot = covered
        self._written(lsn)

    def wait_idle(self) -> None:
        """Block until no background checkpoint is running (any thread)."""
        self._idle.wait()

    def stop(self) -> None:
        """Stop the background writer (after the last checkpoint)."""
        self._writer.stop()

    # -- a snapshot is durable -------------------------------------------------------
    def _written(self, lsn: int) -> None:
        self._completed += 1
        self._last_duration = time.monotonic() - self._started_at
        self._last_written_at = time.time()
        try:
            self._last_bytes = self._fs.size(snapshot_path(self._root, lsn))
        except OSError:
            self._last_bytes = 0
        log.info("checkpoint at LSN %d written: %d keys, %d bytes in %.1f ms", lsn,
                 len(self._keyspace), self._last_bytes, self._last_duration * 1000,
                 extra=_event("checkpoint_end", lsn=lsn, bytes=self._last_bytes,
                              duration_s=self._last_duration))
        self._retire(lsn)

    def _retire(self, new_lsn: int) -> None:
        """A snapshot at ``new_lsn`` is durable: delete what the previous one covers."""
        previous = self._snapshots[-1] if self._snapshots else None
        self._snapshots.append(new_lsn)
        if previous is None:
            return
        try:
            for path in self._log.delete_through(previous):
                log.info("deleted WAL segment %s (covered by snapshot LSN %d)", path, previous)
            old = [s for s in self._snapshots if s < previous]
            for lsn in old:
                self._fs.unlink(snapshot_path(self._root, lsn))
            if old:
                self._fs.sync_dir(posixpath.join(self._root, SNAP_DIR))
            self._snapshots = [s for s in self._snapshots if s >= previous]
        except OSError as exc:
            log.warning("could not delete covered files: %s", exc)

    def stats(self) -> CheckpointStats:
        """The counters now (any thread; no locking, each field read once)."""
        return CheckpointStats(
            snapshots=tuple(self._snapshots),
            wal_bytes_since_snapshot=self._log.bytes_written - self._bytes_at_snapshot,
            running=self._running,
            completed=self._completed,
            failed=self._failed,
            last_error=self._last_error,
            last_start_pause_seconds=self._last_start_pause,
            last_duration_seconds=self._last_duration,
            last_bytes=self._last_bytes,
            last_written_at=self._last_written_at,
        )


def _event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` for a log call: the event's name and fields, for JSON logs."""
    return {"fields": {"event": name, **fields}}
