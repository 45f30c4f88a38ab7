"""The storage engine: recovery, group commit, checkpoints, and the table readers see.

Synchronous and thread-safe; no asyncio, no sockets. A server submits writes with an
opaque waiter and is told about each commit group once, through the sink it passes
to ``Engine.open``; embedding code can use the blocking ``write``, ``transact`` and
``scan``. A sweeper thread asks the committer, every ``SWEEP_INTERVAL``, to delete
keys whose deadline passed.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from storage.checkpoint import Checkpointer, CheckpointPolicy
from storage.committer import GROUP_BUCKETS, SYNC_BUCKETS, Committer, GroupSink, Write
from storage.errors import EngineClosedError, EngineFailedError
from storage.format import LOCK_NAME, Op
from storage.fs import DirLock, FileSystem, OsFileSystem
from storage.keyspace import Keyspace
from storage.ops import OperationResult, Page, Scan, Txn, TxnResult, check_operation
from storage.outcome import Outcome
from storage.recovery import RecoveryMode, RecoveryReport, recover
from storage.snapshot_writer import CheckpointMode, SnapshotWriter
from storage.stats import EngineStats, Histogram
from storage.wal.log import Log

log = logging.getLogger("walkv.storage")

MiB = 1 << 20
_PUT, _EVALUATE = Op.PUT, Op.EVALUATE  # bound once: enum attribute lookups are slow
SWEEP_INTERVAL = 0.1
"""Seconds between expiry sweeps (Redis's active expiry runs at the same 10 Hz)."""


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
    clock: Callable[[], int] | None = None
    """The wall clock in ms since the epoch, for deadlines and commit times (None: the
    system's; tests pass their own)."""


class _SyncWaiter:
    __slots__ = ("event", "outcome", "result")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcome = Outcome.FAILED
        self.result: OperationResult | None = None

    def deliver(self, outcome: Outcome, result: OperationResult | None) -> None:
        self.outcome = outcome
        self.result = result
        self.event.set()


def _deliver_each(waiters: Sequence[Any], outcome: Outcome,
                  results: Sequence[OperationResult | None] | None) -> None:
    for index, waiter in enumerate(waiters):
        waiter.deliver(outcome, None if results is None else results[index])


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
        self.keyspace: Keyspace = state.keyspace
        self.keyspace.clock = options.clock
        """The committed state. Read-only for callers; ``keyspace.get`` is the read path."""
        self._log = Log(fs, root, state.segments, state.last_lsn + 1, options.segment_bytes,
                        options.fsync)
        self._committer = Committer(self._log, self.keyspace, state.last_lsn + 1, sink,
                                    options.group_max_bytes)
        self._checkpoints = Checkpointer(
            fs, root, self._log, self.keyspace, self._committer,
            SnapshotWriter(options.checkpoint_mode, fs, root),
            CheckpointPolicy(options.checkpoint_bytes), state.snapshots,
            state.wal_bytes_since_snapshot)
        self._committer.start(after_commit=self._checkpoints.after_commit)
        self._hand_over = self._committer.submit_batch
        self._stop_sweeping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_periodically, name="walkv-sweeper",
                                         daemon=True)
        self._sweeper.start()

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
    @property
    def table(self) -> dict[bytes, bytes]:
        """The committed values, read-only for callers; expired keys stay in it until the
        sweep deletes them (``get`` hides them at once)."""
        return self.keyspace.values

    def get(self, key: bytes) -> bytes | None:
        """The committed value of ``key``, or None (also once its deadline passed)."""
        return self.keyspace.get(key)

    def deadline(self, key: bytes) -> int | None:
        """When ``key`` expires (ms since the epoch), or None if it does not."""
        return self.keyspace.deadline(key)

    def now_ms(self) -> int:
        """The clock deadlines are judged by (the wall clock, never behind the log)."""
        return self.keyspace.now_ms()

    def __len__(self) -> int:
        """Keys in the table, counting expired ones not yet swept (like Redis DBSIZE)."""
        return len(self.keyspace)

    def submit(self, op: Op, key: bytes, value: bytes | Txn | Scan | None, waiter: Any) -> None:
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
            if op == _EVALUATE:
                check_operation(value)
        if self._closing:
            raise EngineClosedError("engine is closing")
        failed = self._committer.failed
        if failed is not None:
            raise EngineFailedError(failed)
        if writes:
            self._hand_over(writes)

    def write(self, op: Op, key: bytes = b"", value: bytes | None = None) -> Outcome:
        """Submit one write and block until its group is committed (default sink only)."""
        return self._wait(op, key, value)[0]

    def transact(self, txn: Txn) -> tuple[Outcome, TxnResult | None]:
        """Evaluate ``txn`` in commit order and block until its effects are durable.

        The result is None unless the outcome is OK (default sink only).
        """
        outcome, result = self._wait(_EVALUATE, b"", txn)
        return outcome, result if isinstance(result, TxnResult) else None

    def scan(self, scan: Scan) -> Page:
        """One page of live keys in byte order, as of a point in commit order."""
        outcome, result = self._wait(_EVALUATE, b"", scan)
        if not isinstance(result, Page):
            raise EngineFailedError(self.failed or f"scan not answered: {outcome.name}")
        return result

    def _wait(self, op: Op, key: bytes, value: object) -> tuple[Outcome, object]:
        waiter = _SyncWaiter()
        self.submit(op, key, value, waiter)  # type: ignore[arg-type]
        waiter.event.wait()
        return waiter.outcome, waiter.result

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
        self._stop_sweeping.set()
        self._sweeper.join()
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

    def _sweep_periodically(self) -> None:
        done = threading.Event()
        done.set()

        def sweep() -> None:
            try:
                self._committer.sweep()
            finally:
                done.set()

        while not self._stop_sweeping.wait(SWEEP_INTERVAL):
            if done.is_set():  # never more than one sweep queued behind busy groups
                done.clear()
                self._committer.post(sweep)

    def stats(self) -> EngineStats:
        """Counters for monitoring (cheap: no table scan; safe from any thread)."""
        c = self._committer.stats
        puts = c.records - c.deletes - c.clears - c.expires
        return EngineStats(
            keys=len(self.keyspace),
            expiring_keys=len(self.keyspace.expires),
            operations=c.operations,
            reaped=c.reaped,
            last_lsn=self.last_lsn,
            groups=c.groups,
            records=c.records,
            committed={Op.PUT: puts, Op.DELETE: c.deletes, Op.CLEAR: c.clears,
                       Op.EXPIRE: c.expires},
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
