"""Group commit: one thread turns everything that is pending into one durable frame.

Theory of operation
-------------------
Writers hand writes over in *batches* (``submit_batch``: a list of ``(op, key, value,
waiter)``; nothing is visible yet). A server hands over everything it parsed in one
event-loop iteration as one batch, so the committer is woken at most once per
iteration and sees an iteration's writes together. The committer thread takes the
first waiting batch, then every other batch already handed over, and makes them one
commit group:

1. decide the group's effects: plain writes (PUT, DELETE, CLEAR) are their own
   effects; ``Op.EVALUATE`` writes carry a transaction or a scan (``storage.ops``),
   evaluated here, in order, against the table plus the effects decided so far
   (``Evaluation``), so each sees every earlier write of the log and of its group,
2. encode the effects as one WAL frame (its first LSN is the next unused LSN),
3. one synced write (``Log.append``: ``pwritev2(RWF_DSYNC)``, or write + fdatasync),
4. apply the effects to the keyspace in log order (now, and only now, readers see them),
5. hand the whole group's waiters to the sink in one call, with one outcome and,
   when the group evaluated anything, each operation's result.

A group of plain writes only (the common one) skips step 1: its columns go to the
frame as they are. A group whose operations changed nothing (failed conditions,
scans) writes no frame: its answers were decided by durable state alone.

While step 2 runs, new batches queue up and form the next group. There is no timer
and no batch size: at low load a write waits for one fsync, at high load a group holds
whatever arrived during the previous fsync. A group larger than ``group_max_bytes``
of keys and values is split into several (rare: only huge values or huge batches).
All waiters of a group share its outcome:

* OK: durable and applied.
* NO_SPACE: the device was full; the frame was cut back, nothing was applied, the
  LSNs are reused by the next group, and later groups are tried normally.
* FAILED: a write or fsync error. The log can no longer be trusted (after a failed
  fsync the kernel may have dropped the dirty pages: never retry it), so the
  committer is *failed* for good: this and every later group gets FAILED without
  touching the disk. Reads are unaffected.

Why batches: the committer's own work per group is then a few calls into C (columns
by ``zip``, msgpack, one synced write, one ``dict.update``) however many writes it
holds, and groups are as large as the load makes them. Fewer, larger groups mean fewer
syncs, and a sync costs CPU as well as time (the README has the measurements).

Control work that must not race with commits (starting a checkpoint, deleting
covered segments, the expiry sweep, stopping) runs on the same thread, between groups.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from storage.errors import NoSpaceError
from storage.format import Op, encode_group
from storage.keyspace import Keyspace
from storage.ops import Evaluation, OperationResult
from storage.outcome import Outcome
from storage.wal.log import Log

log = logging.getLogger("walkv.storage")


Write = tuple[Op, bytes, Any, Any]
"""One write as handed to the committer: op, key, value, waiter. The value is bytes for
PUT, None for DELETE and CLEAR, and a ``storage.ops`` Txn or Scan for EVALUATE."""

GroupSink = Callable[[Sequence[Any], Outcome, "Sequence[OperationResult | None] | None"], None]
"""Receives each group's waiters, outcome and results, once per group, on the committer
thread. Results are None for a group of plain writes (and whenever the outcome is not
OK), else one per waiter: the TxnResult or Page of an EVALUATE write, None for others."""


class _Control:
    __slots__ = ("done", "error", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.error: OSError | None = None


class _Stop:
    pass


_STOP = _Stop()

# Bound once: enum attribute lookups cost ~100 ns each, and these run per group.
_PUT, _DELETE, _CLEAR, _EXPIRE, _EVALUATE = Op.PUT, Op.DELETE, Op.CLEAR, Op.EXPIRE, Op.EVALUATE
_OK = Outcome.OK

SWEEP_KEYS = 1000
"""Expired keys one sweep deletes at most."""


SYNC_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds (seconds) of the histogram of one group's synced write."""
GROUP_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
"""Upper bounds of the histogram of writes per commit group."""


class CommitStats:
    """Counters kept by the committer (read from other threads without locking).

    Histogram counts are per bucket (not cumulative), the last one for values above
    every bound. Committed PUTs are ``records - deletes - clears``.
    """

    __slots__ = ("clears", "deletes", "expires", "fsync_seconds", "group_counts", "groups",
                 "max_group", "no_space_groups", "operations", "reaped", "records", "refused",
                 "sync_counts")

    def __init__(self) -> None:
        self.groups = 0
        self.records = 0
        self.max_group = 0
        self.fsync_seconds = 0.0
        self.deletes = 0
        self.clears = 0
        self.expires = 0
        """EXPIRE records committed."""
        self.operations = 0
        """Transactions and scans evaluated (whatever their result)."""
        self.reaped = 0
        """Expired keys deleted by sweeps."""
        self.no_space_groups = 0
        self.sync_counts = [0] * (len(SYNC_BUCKETS) + 1)
        self.group_counts = [0] * (len(GROUP_BUCKETS) + 1)
        self.refused = {Outcome.NO_SPACE: [0] * (max(Op) + 1), Outcome.FAILED: [0] * (max(Op) + 1)}
        """Writes not applied, by group outcome, indexed by op."""


class Committer:
    """The single writer of the log and of the table (see the module docstring)."""

    def __init__(self, log: Log, keyspace: Keyspace, next_lsn: int, sink: GroupSink,
                 group_max_bytes: int) -> None:
        self._log = log
        self._keyspace = keyspace
        self.next_lsn = next_lsn
        self._sink = sink
        self._group_max_bytes = group_max_bytes
        self._after_commit: Callable[[], None] = _nothing
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.failed: str | None = None
        """Why the log failed, once it has; writes are refused from then on."""
        self.out_of_space = False
        """The last group found the device full (no group has committed since)."""
        self.stats = CommitStats()
        self._thread = threading.Thread(target=self._run, name="walkv-committer", daemon=True)

    def start(self, after_commit: Callable[[], None]) -> None:
        """Start the thread; ``after_commit`` runs on it after every durable group."""
        self._after_commit = after_commit
        self._thread.start()

    # -- called from other threads ------------------------------------------------------
    def submit_batch(self, writes: list[Write]) -> None:
        """Hand ``writes`` (validated by the engine) to the committer; the list is taken over.

        The sink hears about each write with its group.
        """
        self._queue.put(writes)

    def post(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the committer thread between groups (does not wait)."""
        self._queue.put(_Control(fn))

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the committer thread between groups and wait for it.

        An OSError raised by ``fn`` is re-raised here, in the caller's thread.
        """
        control = _Control(fn)
        self._queue.put(control)
        control.done.wait()
        if control.error is not None:
            raise control.error

    def stop(self) -> None:
        """Commit everything queued so far, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    # -- the committer thread -----------------------------------------------------------
    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        carry: Any = None
        while True:
            item = carry if carry is not None else get()
            carry = None
            if type(item) is not list:
                if item is _STOP:
                    return
                self._run_control(item)
                continue
            # Every batch already handed over joins this group.
            writes: list[Write] = item
            while True:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if type(item) is not list:
                    carry = item
                    break
                writes += item
            try:
                self._commit_writes(writes)
            except Exception as exc:  # a bug here must fail the engine, not hang it
                log.exception("internal error while committing a group")
                self.fail(f"internal error while committing a group: {exc!r}")
                self._sink([w[3] for w in writes], Outcome.FAILED, None)

    def _commit_writes(self, writes: list[Write]) -> None:
        # Column-wise, the frame's layout, in C: no per-write Python code here.
        ops, keys, values, waiters = zip(*writes, strict=True)
        if _EVALUATE in ops:
            self._commit_evaluated(writes)
            return
        size = sum(map(len, keys)) + sum(map(len, filter(None, values)))
        if size <= self._group_max_bytes or len(writes) == 1:
            self._commit(bytes(ops), keys, values, waiters)
            return
        for group in _split(writes, self._group_max_bytes):
            ops, keys, values, waiters = zip(*group, strict=True)
            self._commit(bytes(ops), keys, values, waiters)

    def _run_control(self, control: _Control) -> None:
        try:
            control.fn()
        except OSError as exc:
            # E.g. a snapshot that did not fit: that is the caller's failure, not the
            # log's. Letting it escape would end this thread and hang every later write.
            control.error = exc
        finally:
            control.done.set()

    def _commit(self, ops: bytes, keys: Sequence[bytes], values: Sequence[bytes | None],
                waiters: Sequence[Any]) -> None:
        """A group of plain writes: their records are the group's effects as they are."""
        outcome = self._durable(ops, keys, values, None, self._keyspace.now_ms())
        if outcome is not _OK:
            self._refuse(ops, outcome)
        self._sink(waiters, outcome, None)
        if outcome is _OK:
            self._after_commit()

    def _commit_evaluated(self, writes: list[Write]) -> None:
        """A group with operations to evaluate: its effects are decided here, in order."""
        evaluation = Evaluation(self._keyspace, self._keyspace.now_ms())
        results: list[OperationResult | None] = []
        for op, key, value, _ in writes:
            if op == _EVALUATE:
                results.append(evaluation.run(value))
                continue
            results.append(None)
            if op == _PUT:
                evaluation.put(key, value, None)
            elif op == _DELETE:
                evaluation.delete(key)
            else:
                evaluation.clear()
        self.stats.operations += len(writes) - sum(1 for r in results if r is None)
        waiters = [w[3] for w in writes]
        if not evaluation.ops:
            # Nothing to store: every answer was decided by the durable table alone.
            self._sink(waiters, _OK, results)
            return
        outcome = self._durable(bytes(evaluation.ops), evaluation.keys, evaluation.values,
                                evaluation.deadlines if evaluation.timed else None,
                                evaluation.now, touched=True)
        if outcome is not _OK:
            self._refuse(bytes(w[0] for w in writes), outcome)
        self._sink(waiters, outcome, results if outcome is _OK else None)
        if outcome is _OK:
            self._after_commit()

    def _durable(self, ops: bytes, keys: Sequence[bytes], values: Sequence[bytes | None],
                 deadlines: Sequence[int | None] | None, time_ms: int,
                 touched: bool = False) -> Outcome:
        """Write one frame of effects with one synced write, then apply it.

        ``touched``: the evaluation already marked the watchers of these keys."""
        if self.failed is not None:
            return Outcome.FAILED
        frame = encode_group(self.next_lsn, ops, keys, values, deadlines, time_ms)
        started = time.perf_counter()
        try:
            self._log.append(frame)
        except NoSpaceError:
            self._no_space()
            return Outcome.NO_SPACE
        except OSError as exc:
            self.fail(f"WAL write/fsync failed: {exc}")
            return Outcome.FAILED
        elapsed = time.perf_counter() - started
        count = len(ops)
        stats = self.stats
        stats.fsync_seconds += elapsed
        stats.sync_counts[bisect_left(SYNC_BUCKETS, elapsed)] += 1
        stats.groups += 1
        stats.records += count
        stats.group_counts[bisect_left(GROUP_BUCKETS, count)] += 1
        stats.max_group = max(stats.max_group, count)
        if self.out_of_space:
            self.out_of_space = False
            log.warning("disk space is back: writes are accepted again",
                        extra={"fields": {"event": "space_back"}})
        self._keyspace.apply(ops, keys, values, deadlines, time_ms, touch=not touched)
        if ops.count(_PUT) != count:
            stats.deletes += ops.count(_DELETE)
            stats.clears += ops.count(_CLEAR)
            stats.expires += ops.count(_EXPIRE)
        self.next_lsn += count
        return _OK

    # -- background upkeep (committer thread, between groups) ------------------------------
    def sweep(self) -> None:
        """Delete keys whose deadline passed, at most ``SWEEP_KEYS`` of them.

        Expired keys are deleted through the log (like Redis propagating DEL for an
        expired key), so no clock step after a restart can bring them back. The cap
        keeps a sweep as short as one ordinary group.
        """
        if self.failed is not None:
            return
        space = self._keyspace
        now = space.now_ms()
        keys = space.due(now, SWEEP_KEYS)  # each holds a value, past its deadline
        if not keys:
            return
        outcome = self._durable(bytes([_DELETE]) * len(keys), keys, [None] * len(keys), None,
                                now)
        if outcome is _OK:
            self.stats.reaped += len(keys)
            self._after_commit()

    def _refuse(self, ops: bytes, outcome: Outcome) -> None:
        counts = self.stats.refused[outcome]
        for op in Op:
            counts[op] += ops.count(op)

    def _no_space(self) -> None:
        self.stats.no_space_groups += 1
        if not self.out_of_space:
            self.out_of_space = True
            log.warning("no space left on device: writes get 507 until space is freed "
                        "(nothing was applied; the WAL is unchanged)",
                        extra={"fields": {"event": "no_space"}})

    def fail(self, why: str) -> None:
        """Enter the failed state for good (committer thread only)."""
        if self.failed is None:
            self.failed = why
            log.error("storage failed, writes refused until restart (reads continue): %s", why,
                      extra={"fields": {"event": "storage_failed"}})
            self._log.abandon_after_failure()


def _nothing() -> None:
    pass


def _split(writes: list[Write], cap: int) -> list[list[Write]]:
    """Cut ``writes`` into groups, each closed once it holds ``cap`` key+value bytes."""
    groups: list[list[Write]] = []
    group: list[Write] = []
    size = 0
    for write in writes:
        group.append(write)
        value = write[2]
        size += len(write[1]) + (len(value) if value else 0)
        if size >= cap:
            groups.append(group)
            group, size = [], 0
    if group:
        groups.append(group)
    return groups
