"""The storage engine: recovery, group commit, checkpoints, and the table readers see.

Synchronous and thread-safe; no asyncio, no sockets. A server submits writes with an
opaque waiter and is told about each commit group once, through the sink it passes
to ``Engine.open``; embedding code can use the blocking ``write``.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from storage.checkpoint import Checkpointer, CheckpointPolicy
from storage.committer import GROUP_BUCKETS, SYNC_BUCKETS, Committer, GroupSink, Write
from storage.errors import EngineClosedError, EngineFailedError
from storage.format import LOCK_NAME, Op
from storage.fs import DirLock, FileSystem, OsFileSystem
from storage.outcome import Outcome
from storage.recovery import RecoveryMode, RecoveryReport, recover
from storage.snapshot_writer import CheckpointMode, SnapshotWriter
from storage.stats import EngineStats, Histogram
from storage.wal.log import Log

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
        self._committer = Committer(self._log, self.table, state.last_lsn + 1, sink,
                                    options.group_max_bytes)
        self._checkpoints = Checkpointer(
            fs, root, self._log, self.table, self._committer,
            SnapshotWriter(options.checkpoint_mode, fs, root),
            CheckpointPolicy(options.checkpoint_bytes), state.snapshots,
            state.wal_bytes_since_snapshot)
        self._committer.start(after_commit=self._checkpoints.after_commit)
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

    def checkpoint(self) -> None:
        """Write a snapshot now, synchronously (waits for a running one first)."""
        self._checkpoints.wait_idle()
        self._committer.call(self._checkpoints.write_now)

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Commit what is queued, finish checkpoints, snapshot (unless failed), unlock."""
        if self._lock is None:
            return
        self._closing = True
        try:
            self._checkpoints.wait_idle()
            if self.options.checkpoint_on_close:
                try:
                    self._committer.call(self._checkpoints.write_now)
                except OSError as exc:
                    log.error("checkpoint on close failed: %s (the WAL still has everything)",
                              exc)
            self._committer.stop()
            if self._committer.failed is None:
                self._log.close()
        finally:
            self._checkpoints.stop()
            self._lock.release()
            self._lock = None

    def stats(self) -> EngineStats:
        """Counters for monitoring (cheap: no table scan; safe from any thread)."""
        c = self._committer.stats
        puts = c.records - c.deletes - c.clears
        return EngineStats(
            keys=len(self.table),
            last_lsn=self.last_lsn,
            groups=c.groups,
            records=c.records,
            committed={Op.PUT: puts, Op.DELETE: c.deletes, Op.CLEAR: c.clears},
            refused={outcome: {op: counts[op] for op in Op}
                     for outcome, counts in c.refused.items()},
            max_group=c.max_group,
            group_size=Histogram(GROUP_BUCKETS, tuple(c.group_counts), float(c.records)),
            sync=Histogram(SYNC_BUCKETS, tuple(c.sync_counts), c.fsync_seconds),
            no_space_groups=c.no_space_groups,
            out_of_space=self._committer.out_of_space,
            failed=self._committer.failed,
            wal_bytes_written=self._log.bytes_written,
            segments=len(self._log.segments),
            checkpoints=self._checkpoints.stats(),
            recovery=self.recovery_report,
        )


def _replace_mode(options: EngineOptions) -> EngineOptions:
    return replace(options, checkpoint_mode=CheckpointMode.THREAD)
