"""The storage engine: recovery, group commit, checkpoints, and the table readers see.

Synchronous and thread-safe; no asyncio, no sockets. A server submits writes with an
opaque waiter and is told about each commit group once, through the sink it passes
to ``Engine.open``; embedding code can use the blocking ``write``.
"""

from __future__ import annotations

import errno
import logging
import posixpath
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from storage.checkpoint import (
    CheckpointMode,
    CheckpointPolicy,
    CheckpointResult,
    ForkReaper,
    start_checkpoint,
)
from storage.committer import GROUP_BUCKETS, SYNC_BUCKETS, Committer, GroupSink, Outcome, Write
from storage.errors import EngineClosedError, EngineFailedError
from storage.format import LOCK_NAME, SNAP_DIR, Op, snapshot_name
from storage.fs import DirLock, FileSystem, OsFileSystem
from storage.log import Log
from storage.recovery import RecoveryMode, RecoveryReport, recover
from storage.snapshot import write_snapshot

log = logging.getLogger("walkv.storage")

MiB = 1 << 20
_PUT = Op.PUT  # bound once: enum attribute lookups are slow on the write path


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Engine settings. Every default is safe; only ``fsync=False`` weakens durability."""

    segment_bytes: int = 64 * MiB
    """Rotate to a new WAL segment once the current one reaches this size."""
    group_max_bytes: int = 4 * MiB
    """Stop adding writes to a commit group once it holds this many key+value bytes."""
    checkpoint_bytes: int = 64 * MiB
    """Write a snapshot after this many WAL bytes since the last one (0: only on close)."""
    checkpoint_mode: CheckpointMode = CheckpointMode.FORK
    """How snapshots are written in the background (fork needs the real filesystem)."""
    recovery_mode: RecoveryMode = RecoveryMode.STRICT
    """What recovery does about damage before the log tail."""
    fsync: bool = True
    """UNSAFE when False: acknowledged writes can be lost on power failure or crash of the
    machine. For benchmarks that compare against the durable configuration only."""
    checkpoint_on_close: bool = True
    """Write a snapshot on clean close, so the next start replays no WAL."""


class _SyncWaiter:
    __slots__ = ("event", "outcome")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcome = Outcome.FAILED

    def deliver(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.event.set()


def _deliver_each(waiters: Sequence[Any], outcome: Outcome) -> None:
    for waiter in waiters:
        waiter.deliver(outcome)


@dataclass(slots=True)
class _CheckpointState:
    running: bool = False
    idle: threading.Event = field(default_factory=threading.Event)
    snapshots: list[int] = field(default_factory=list)
    bytes_at_snapshot: int = 0
    completed: int = 0
    failed: int = 0
    last_error: str = ""
    last_start_pause: float = 0.0
    started_at: float = 0.0
    """time.monotonic() when the running (or last) checkpoint started."""
    last_duration: float = 0.0
    """Seconds the last completed checkpoint took, start to durable."""
    last_bytes: int = 0
    """Size of the last snapshot written."""
    last_written_at: float | None = None
    """time.time() when this process last completed a snapshot."""


class Engine:
    """A durable key-value table (see the module docstring)."""

    def __init__(self, root: str, options: EngineOptions, fs: FileSystem, lock: DirLock,
                 sink: GroupSink) -> None:
        self.root = root
        self.options = options
        self._fs = fs
        self._lock: DirLock | None = lock
        self._closing = False
        state = recover(fs, root, options.recovery_mode)
        self.recovery_report: RecoveryReport = state.report
        self.table = state.table
        """The committed state. Read-only for callers; ``table.get`` is the read path."""
        self._log = Log(fs, root, state.segments, state.last_lsn + 1, options.segment_bytes,
                        options.fsync)
        self._policy = CheckpointPolicy(options.checkpoint_bytes)
        self._ckpt = _CheckpointState(snapshots=state.snapshots)
        self._ckpt.bytes_at_snapshot = -state.wal_bytes_since_snapshot
        self._ckpt.idle.set()
        self._reaper = (ForkReaper() if options.checkpoint_mode is CheckpointMode.FORK
                        else None)
        self._committer = Committer(self._log, self.table, state.last_lsn + 1, sink,
                                    options.group_max_bytes, self._after_commit)
        self._hand_over = self._committer.submit_batch

    @classmethod
    def open(cls, root: str, options: EngineOptions | None = None, fs: FileSystem | None = None,
             sink: GroupSink | None = None) -> Engine:
        """Lock ``root``, recover it, and start the committer.

        Raises LockHeldError, CorruptionError or OSError; the lock is released on error.
        ``sink`` receives every commit group's waiters; the default calls
        ``waiter.deliver(outcome)`` on each (what ``write`` relies on).
        """
        fs = fs or OsFileSystem()
        options = options or EngineOptions()
        if options.checkpoint_mode is CheckpointMode.FORK and not isinstance(fs, OsFileSystem):
            options = _replace_mode(options)
        fs.makedirs(root)
        lock = fs.lock(posixpath.join(root, LOCK_NAME))
        try:
            return cls(root, options, fs, lock, sink or _deliver_each)
        except BaseException:
            lock.release()
            raise

    # -- reads and writes ---------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key``, or None."""
        return self.table.get(key)

    def __len__(self) -> int:
        return len(self.table)

    def submit(self, op: Op, key: bytes, value: bytes | None, waiter: Any) -> None:
        """Queue one write (``submit_batch`` with a batch of one)."""
        self.submit_batch([(op, key, value, waiter)])

    def submit_batch(self, writes: list[Write]) -> None:
        """Queue writes ``(op, key, value, waiter)``; the list is taken over.

        A write becomes visible, and the sink hears of it, once durable. Batches that
        reach the committer while it is busy are committed together, so a caller that
        collects its writes (a server: one batch per event-loop iteration) gets large
        commit groups and wakes the committer once per batch, not once per write.

        Raises, before anything of the batch is queued: EngineFailedError after a log
        failure, EngineClosedError after close(), TypeError if a key (or a PUT's value)
        is not ``bytes``.
        """
        # Checked here because the log would accept it, acknowledge it, and then
        # recovery would reject the frame: one bad call must not poison the WAL.
        for op, key, value, _ in writes:
            if type(key) is not bytes or (op == _PUT and type(value) is not bytes):
                raise TypeError("key must be bytes, and a PUT needs a bytes value")
        if self._closing:
            raise EngineClosedError("engine is closing")
        failed = self._committer.failed
        if failed is not None:
            raise EngineFailedError(failed)
        if writes:
            self._hand_over(writes)

    def write(self, op: Op, key: bytes = b"", value: bytes | None = None) -> Outcome:
        """Submit one write and block until its group is committed (default sink only)."""
        waiter = _SyncWaiter()
        self.submit(op, key, value, waiter)
        waiter.event.wait()
        return waiter.outcome

    @property
    def failed(self) -> str | None:
        """Why writes are refused, if the engine is in the failed state."""
        return self._committer.failed

    @property
    def out_of_space(self) -> bool:
        """The last commit group found the device full and none has committed since."""
        return self._committer.out_of_space

    @property
    def last_lsn(self) -> int:
        """LSN of the last committed record."""
        return self._committer.next_lsn - 1

    # -- checkpoints (committer thread) -------------------------------------------------
    def _after_commit(self) -> None:
        log_ = self._log
        if log_.wants_rotation():
            self._rotate()
        ckpt = self._ckpt
        if self._policy.due(log_.bytes_written - ckpt.bytes_at_snapshot, ckpt.running):
            self._begin_checkpoint()

    def _rotate(self) -> bool:
        before = self._log.current_path
        try:
            self._log.rotate(self._committer.next_lsn)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:  # NoSpaceError too: the old segment goes on
                log.warning("WAL rotation postponed: no space for a new segment")
                return False
            self._committer.fail(f"WAL rotation failed: {exc}")
            return False
        if self._log.current_path != before:
            log.info("WAL rotated: new segment %s from LSN %d (%d segments)",
                     posixpath.basename(self._log.current_path), self._committer.next_lsn,
                     len(self._log.segments), extra=_event("rotation"))
        return True

    def _begin_checkpoint(self) -> None:
        ckpt = self._ckpt
        lsn = self._committer.next_lsn - 1
        if ckpt.snapshots and ckpt.snapshots[-1] >= lsn:
            return
        # Start a new segment at lsn + 1 so every older segment is wholly covered.
        started = time.perf_counter()
        if not self._rotate():
            return
        rotated = time.perf_counter()
        ckpt.running = True
        ckpt.idle.clear()
        ckpt.bytes_at_snapshot = self._log.bytes_written
        ckpt.started_at = time.monotonic()
        start_checkpoint(self.options.checkpoint_mode, self._fs, self.root, lsn, self.table,
                         self._checkpoint_finished, self._reaper)
        done = time.perf_counter()
        ckpt.last_start_pause = done - started
        log.info("checkpoint started at LSN %d (%d keys, %s; commits paused %.1f ms: "
                 "WAL rotation %.1f, start %.1f)", lsn, len(self.table),
                 self.options.checkpoint_mode.value, ckpt.last_start_pause * 1000,
                 (rotated - started) * 1000, (done - rotated) * 1000,
                 extra=_event("checkpoint_start", lsn=lsn))

    def _checkpoint_finished(self, result: CheckpointResult) -> None:
        # Called on the reaper/writer thread: hand the bookkeeping to the committer.
        self._committer.post(lambda: self._record_checkpoint(result))
        self._ckpt.idle.set()

    def _record_checkpoint(self, result: CheckpointResult) -> None:
        ckpt = self._ckpt
        ckpt.running = False
        if not result.ok:
            ckpt.failed += 1
            ckpt.last_error = result.error
            log.error("checkpoint at LSN %d failed: %s", result.lsn, result.error,
                      extra=_event("checkpoint_failed", lsn=result.lsn))
            return
        self._checkpoint_done(result.lsn)
        self._retire(result.lsn)

    def _checkpoint_done(self, lsn: int) -> None:
        ckpt = self._ckpt
        ckpt.completed += 1
        ckpt.last_duration = time.monotonic() - ckpt.started_at
        ckpt.last_written_at = time.time()
        try:
            ckpt.last_bytes = self._fs.size(posixpath.join(self.root, SNAP_DIR,
                                                           snapshot_name(lsn)))
        except OSError:
            ckpt.last_bytes = 0
        log.info("checkpoint at LSN %d written: %d keys, %d bytes in %.1f ms", lsn,
                 len(self.table), ckpt.last_bytes, ckpt.last_duration * 1000,
                 extra=_event("checkpoint_end", lsn=lsn, bytes=ckpt.last_bytes,
                              duration_s=ckpt.last_duration))

    def _retire(self, new_lsn: int) -> None:
        """A snapshot at ``new_lsn`` is durable: delete what the previous one covers."""
        ckpt = self._ckpt
        previous = ckpt.snapshots[-1] if ckpt.snapshots else None
        ckpt.snapshots.append(new_lsn)
        if previous is None:
            return
        try:
            for path in self._log.delete_through(previous):
                log.info("deleted WAL segment %s (covered by snapshot LSN %d)", path, previous)
            snap_dir = posixpath.join(self.root, SNAP_DIR)
            old = [s for s in ckpt.snapshots if s < previous]
            for lsn in old:
                self._fs.unlink(posixpath.join(snap_dir, snapshot_name(lsn)))
            if old:
                self._fs.sync_dir(snap_dir)
            ckpt.snapshots = [s for s in ckpt.snapshots if s >= previous]
        except OSError as exc:
            log.warning("could not delete covered files: %s", exc)

    def checkpoint(self) -> None:
        """Write a snapshot now, synchronously (waits for a running one first)."""
        self._ckpt.idle.wait()
        self._committer.call(self._checkpoint_inline)

    def _checkpoint_inline(self) -> None:
        lsn = self._committer.next_lsn - 1
        if self._committer.failed is not None or lsn == 0:
            return
        if self._ckpt.snapshots and self._ckpt.snapshots[-1] >= lsn:
            return
        if not self._rotate():
            return
        covered = self._log.bytes_written
        self._ckpt.started_at = time.monotonic()
        write_snapshot(self._fs, self.root, lsn, self.table)
        self._ckpt.bytes_at_snapshot = covered
        self._checkpoint_done(lsn)
        self._retire(lsn)

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Commit what is queued, finish checkpoints, snapshot (unless failed), unlock."""
        if self._lock is None:
            return
        self._closing = True
        try:
            self._ckpt.idle.wait()
            if self.options.checkpoint_on_close:
                try:
                    self._committer.call(self._checkpoint_inline)
                except OSError as exc:
                    log.error("checkpoint on close failed: %s (the WAL still has everything)",
                              exc)
            self._committer.stop()
            if self._committer.failed is None:
                self._log.close()
        finally:
            if self._reaper is not None:
                self._reaper.stop()
            self._lock.release()
            self._lock = None

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring (cheap: no table scan; safe from any thread).

        Histograms are ``{"bounds": [...], "counts": [...]}`` with one count per bucket
        (not cumulative) and a last one for values above every bound.
        """
        c = self._committer.stats
        ckpt = self._ckpt
        return {
            "keys": len(self.table),
            "last_lsn": self.last_lsn,
            "groups": c.groups,
            "records": c.records,
            "records_by_op": {"PUT": c.records - c.deletes - c.clears, "DELETE": c.deletes,
                              "CLEAR": c.clears},
            "refused_by_outcome": {outcome.name: {op.name: counts[op] for op in Op}
                                   for outcome, counts in c.refused.items()},
            "mean_group": (c.records / c.groups) if c.groups else 0.0,
            "max_group": c.max_group,
            "group_size": {"bounds": list(GROUP_BUCKETS), "counts": list(c.group_counts)},
            "fsync_seconds": c.fsync_seconds,
            "fsync_latency": {"bounds": list(SYNC_BUCKETS), "counts": list(c.sync_counts)},
            "no_space_groups": c.no_space_groups,
            "out_of_space": self._committer.out_of_space,
            "wal_bytes_written": self._log.bytes_written,
            "wal_bytes_since_snapshot": self._log.bytes_written - ckpt.bytes_at_snapshot,
            "segments": len(self._log.segments),
            "snapshots": list(ckpt.snapshots),
            "checkpoint_running": ckpt.running,
            "checkpoints_completed": ckpt.completed,
            "checkpoints_failed": ckpt.failed,
            "checkpoint_last_error": ckpt.last_error,
            "checkpoint_last_start_pause_seconds": ckpt.last_start_pause,
            "checkpoint_last_duration_seconds": ckpt.last_duration,
            "snapshot_last_bytes": ckpt.last_bytes,
            "snapshot_last_written_at": ckpt.last_written_at,
            "failed": self._committer.failed,
            "recovery": self.recovery_report.to_dict(),
        }


def _event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` for a log call: the event's name and fields, for JSON logs."""
    return {"fields": {"event": name, **fields}}


def _replace_mode(options: EngineOptions) -> EngineOptions:
    return replace(options, checkpoint_mode=CheckpointMode.THREAD)
