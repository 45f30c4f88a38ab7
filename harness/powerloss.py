"""``python -m harness powerloss``: power cuts at every fsync boundary, in-process.

Theory of operation
-------------------
SIGKILL cannot lose what the page cache holds, so it cannot catch a store that
acknowledges before fsync or forgets a directory fsync. This explorer (the ALICE /
RocksDB FaultInjectionTestFS idea) runs the storage engine itself on a recording
in-memory filesystem (``storage.testing.MemFileSystem``) and asks, for many points of
its history: what could a power cut right here leave on disk, and does recovery from
each of those states keep the promise?

1. **Plan.** A seeded workload, chosen while a model of the keyspace
   (``harness.history.KeyspaceModel``) follows it: plain PUT / DELETE / CLEAR;
   transactions that store and remove several keys under conditions (a share of them
   chosen to fail their condition and run their other branch); increments of a few
   counters, alone and inside transactions; transactions refused by a step (an
   increment that overflows, of a value that is not a number), which must apply
   nothing; stores with deadlines, appends and expiry changes; and expiry sweeps
   between batches. Deadlines are far in the future for keys that must survive, and
   already past (an hour or more before the engine's ``now_ms()`` when the round
   starts) for values that must never be seen, so the verdicts do not depend on when
   anything runs. The model gives the state after every prefix of the workload and
   each transaction's result.
2. **Record.** The workload runs against ``Engine`` on ``MemFileSystem(record=True)``:
   a first life (commit groups, checkpoints, sweeps, clean close) and a second
   (recovery from that, more of the same, then the cut). A driver hands each batch to
   the engine at once from the engine's completion callback, so every batch is exactly
   one commit group; the engine sweeps only where the plan says (``ExplorerEngine``);
   and the journal of filesystem calls has the same shape on every run with the same
   seed (the bytes differ only in the commit times and deadlines frames carry). The
   callback stamps each write as acknowledged at the journal position where it ran
   and keeps its result. Every result, every sweep's count and the table at the end
   of each life must be what the model says, or the run stops there.
3. **Choose crash points.** Every boundary next to an fsync (file or directory),
   plus a random share of the others. Point ``k`` means "the first ``k`` calls of
   the journal happened".
4. **Build crash states** for each point from ``MemFileSystem.replay``: *durable*
   (only synced data and directory entries), *torn-prefix* and *torn-garbage* (the
   last unsynced write reached the disk as a prefix, or as garbage), *reordered* (a
   random subset of unsynced data writes, directory operations kept in order up to
   a random one: metadata journaled in order, data written back in any order) and
   *process-crash* (everything written survives, as after SIGKILL).
5. **Recover and check.** ``Engine.open`` on the state, then, on what ``get`` shows
   and on the table with its deadlines: no key is visible whose deadline had passed;
   every counter holds at least its acknowledged increments and at most those plus
   the ones in flight; every transaction is there whole or not at all; and the whole
   table equals the model's state after every acknowledged write, or after those plus
   the whole batch in flight (a commit group is all or nothing), except that entries
   past their deadline may already be reclaimed. Nothing else: no lost or resurrected
   write, no lost deadline, no phantom, no half group, no refusal to start. When
   recovery cut a torn tail (and for a random share of the rest) a **second life**
   follows: more writes, a transaction and a sweep, another power cut, recovery
   again, which must hold them all; and a **crash during recovery**: the recovery's
   own calls are recorded and a power cut at each of its fsync boundaries must
   recover the same state.

Every state has an id (round, point, variant). The first violation stops the run and
prints the command that rebuilds exactly that state; points are explored in order,
so it is the earliest crash point of its round that fails.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.history import (
    INT64_MAX,
    Applied,
    Entry,
    KeyspaceModel,
    State,
    Table,
    describe_entry,
    describe_result,
    describe_txn,
    etag_of,
    exact_violations,
    expired,
    matches,
    visible,
)
from harness.oracle import OpKind, Oracle, ViolationKind, counter_value
from harness.report import Finding, Report
from storage import (
    Add,
    Append,
    Check,
    Compare,
    Engine,
    EngineOptions,
    Expire,
    Fetch,
    GroupSink,
    Op,
    OperationResult,
    Outcome,
    Remove,
    Step,
    Store,
    Txn,
)
from storage.testing import FsOp, FsOpKind, MemFileSystem, PowerCut

ROOT = "/db"
WAIT_S = 30.0
"""How long the driver waits for the engine to commit a batch before giving up."""

VARIANTS = ("durable", "torn-prefix", "torn-garbage", "reordered", "process-crash")

HOUR_MS = 3_600_000
YEAR_MS = 365 * 24 * HOUR_MS

Write = tuple[Op, bytes, bytes | Txn | None]
"""One write as the engine takes it; a transaction is ``(Op.EVALUATE, b"", txn)``."""


@dataclass(frozen=True)
class Sweep:
    """An expiry sweep the workload asks for between two batches."""


SWEEP = Sweep()
Action = Write | Sweep
"""One step of the workload: a write, or a sweep."""


class ExplorerEngine(Engine):
    """``Engine`` that reclaims expired keys only when asked (``sweep_now``).

    A running engine sweeps every ``SWEEP_INTERVAL`` on its own thread, at instants
    the wall clock picks. The explorer needs the same journal from every run of a
    seed, so its engines sweep where the workload says; the recording checks that
    each sweep reclaimed exactly what the model expected, which also shows that no
    other sweep ran.
    """

    @classmethod
    def start(cls, fs: MemFileSystem, options: EngineOptions,
              sink: GroupSink | None = None) -> ExplorerEngine:
        """``Engine.open`` of the explorer's root on ``fs``."""
        engine = cls.open(ROOT, options, fs=fs, sink=sink)
        assert isinstance(engine, ExplorerEngine)
        return engine

    def _sweep_periodically(self) -> None:
        self._stop_sweeping.wait()

    def sweep_now(self) -> int:
        """Reclaim the keys whose deadline passed, through the log; how many there were."""
        before = self.stats().reaped
        self._committer.call(self._committer.sweep)
        return self.stats().reaped - before


@dataclass(frozen=True)
class StateId:
    """Names one crash state: the workload round, the journal prefix, the variant."""

    round: int
    point: int
    variant: str

    def __str__(self) -> str:
        return f"round {self.round}, point {self.point}, {self.variant}"


@dataclass(frozen=True)
class PowerLossConfig:
    """One explorer run. Every default is what ``python -m harness powerloss`` uses."""

    states: int = 10_000
    """Stop once this many crash states were checked (after the round in progress)."""
    seed: int = 0
    duration_s: float | None = None
    keys: int = 12
    """A small key space, so that writes overwrite and delete each other."""
    counters: int = 3
    """Keys that only ``Add`` (and CLEAR) changes."""
    timed_keys: int = 4
    """Keys stored with deadlines far in the future: they must survive with them."""
    gone_keys: int = 4
    """Keys only ever stored with deadlines in the past: never visible."""
    batches: int = 40
    """Commit groups per life (a round has two lives)."""
    max_batch: int = 6
    checkpoint_share: float = 0.12
    """Chance of an explicit checkpoint after each batch."""
    sweep_share: float = 0.08
    """Chance of an expiry sweep after each batch."""
    segment_bytes: int = 4096
    """Tiny segments: rotations and segment deletions happen all the time."""
    between_share: float = 0.25
    """Chance of also crashing at a boundary that is not next to an fsync."""
    second_life_share: float = 0.1
    """Share of states (beyond those whose recovery cut something) given a second life."""
    only: StateId | None = None
    """Check just this state (a reproduction)."""


@dataclass
class PowerLossStats:
    """What the run explored."""

    rounds: int = 0
    states: int = 0
    crash_points: int = 0
    journal_ops: int = 0
    fsyncs: int = 0
    acked_writes: int = 0
    transactions: int = 0
    failed_conditions: int = 0
    refused_steps: int = 0
    increments: int = 0
    deadlines_future: int = 0
    deadlines_past: int = 0
    sweeps: int = 0
    second_lives: int = 0
    recovery_crash_states: int = 0
    by_variant: dict[str, int] = field(default_factory=dict)


# -- the workload -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Batches committed back to back, then (maybe) a sweep and a checkpoint."""

    batches: list[list[int]]
    sweep: int | None
    """Index of the sweep action after the last batch, if any."""
    checkpoint: bool


@dataclass(frozen=True)
class Keys:
    """The key families of a round."""

    plain: list[bytes]
    counters: list[bytes]
    timed: list[bytes]
    gone: list[bytes]

    @classmethod
    def of(cls, config: PowerLossConfig) -> Keys:
        """The families ``config`` asks for (binary bytes in every key)."""
        tail = bytes([0xC3, 0xA9, 0, 0xFF])
        return cls([b"k%02d" % i + tail for i in range(config.keys)],
                   [b"counter-%d" % i for i in range(config.counters)],
                   [b"ttl-%d" % i + tail for i in range(config.timed_keys)],
                   [b"gone-%d" % i for i in range(config.gone_keys)])

    def all(self) -> list[bytes]:
        """Every key of the round."""
        return self.plain + self.counters + self.timed + self.gone


@dataclass
class Recording:
    """One round's workload, what the model says of it, and what the engine did."""

    actions: list[Action]
    applied: list[Applied]
    """Per action: the model's result and effects."""
    states: list[Table]
    """``states[i]``: the model's table after the first ``i`` actions."""
    now: int
    """The instant the model judges deadlines at (the engine's clock at the start)."""
    keys: Keys
    lives: list[list[Run]]
    batches: list[list[int]] = field(default_factory=list)
    """Action indices of each batch (one commit group, or one sweep), in order."""
    journal: list[FsOp] = field(default_factory=list)
    submitted_at: list[int] = field(default_factory=list)
    """Per action: journal length when it was submitted."""
    acked_at: list[int] = field(default_factory=list)
    """Per action: journal length when its completion callback ran."""
    results: list[OperationResult | None] = field(default_factory=list)
    """Per action: the engine's result (transactions only)."""
    reclaimed: dict[int, int] = field(default_factory=dict)
    """Per sweep action: keys the engine reclaimed."""
    images: dict[int, Table] = field(default_factory=dict)
    """The engine's table at the end of each life, by actions done."""


def _value(key: bytes, n: int, rng: random.Random) -> bytes:
    """Unique per ``n``; mostly small, some spanning frames, a few over a segment."""
    roll = rng.random()
    if roll < 0.8:
        size = rng.randrange(0, 64)
    elif roll < 0.97:
        size = rng.randrange(64, 3000)
    else:
        size = rng.randrange(4096, 9000)
    return b"%s#%d#" % (key, n) + rng.randbytes(size)


class _Planner:
    """Chooses a round's actions from its seed, following the model as it goes.

    Knowing the state lets it pick conditions that hold or fail on purpose, and a
    step that must be refused.
    """

    def __init__(self, rng: random.Random, config: PowerLossConfig, keys: Keys,
                 now: int) -> None:
        self.rng = rng
        self.config = config
        self.keys = keys
        self.now = now
        self.model = KeyspaceModel(now=now)
        self.actions: list[Action] = []
        self.applied: list[Applied] = []
        self.states: list[Table] = [{}]
        self._serial = 0

    def life(self) -> list[Run]:
        """Plan one life."""
        rng, config = self.rng, self.config
        runs: list[Run] = []
        batches: list[list[int]] = []
        for b in range(config.batches):
            size = rng.randrange(1, config.max_batch + 1)
            batches.append([self._add(self._write()) for _ in range(size)])
            sweep = self._add(SWEEP) if rng.random() < config.sweep_share else None
            checkpoint = rng.random() < config.checkpoint_share
            if sweep is not None or checkpoint or b == config.batches - 1:
                runs.append(Run(batches, sweep, checkpoint))
                batches = []
        return runs

    def _add(self, action: Action) -> int:
        model = self.model
        if isinstance(action, Sweep):
            applied = model.sweep()
        elif action[0] is Op.EVALUATE:
            assert isinstance(action[2], Txn)
            applied = model.transact(action[2])
        elif action[0] is Op.PUT:
            assert isinstance(action[2], bytes)
            applied = model.put(action[1], action[2])
        elif action[0] is Op.DELETE:
            applied = model.delete(action[1])
        else:
            applied = model.clear()
        self.actions.append(action)
        self.applied.append(applied)
        self.states.append(dict(model.table))
        return len(self.actions) - 1

    # -- choosing ---------------------------------------------------------------------
    def _write(self) -> Write:
        rng, keys = self.rng, self.keys
        roll = rng.random()
        if roll < 0.02:
            return (Op.CLEAR, b"", None)
        if roll < 0.18:
            return (Op.DELETE, rng.choice(keys.plain), None)
        if roll < 0.48:
            key = rng.choice(keys.plain)
            return (Op.PUT, key, self._fresh(key))
        if roll < 0.72:
            return _txn(self._transaction())
        if roll < 0.84:
            return _txn(Txn((), (self._increment(),)))
        if roll < 0.90:
            return _txn(Txn((), (self._timed(),)))
        if roll < 0.95:
            return _txn(self._gone())
        return _txn(self._refused())

    def _transaction(self) -> Txn:
        """1-2 conditions (each meant to hold 70% of the time), then 2-4 steps, else 0-2."""
        rng = self.rng
        compare = tuple(self._condition(rng.random() < 0.7) for _ in range(rng.randrange(1, 3)))
        then = tuple(self._step() for _ in range(rng.randrange(2, 5)))
        otherwise = tuple(self._step() for _ in range(rng.randrange(3)))
        return Txn(compare, then, otherwise)

    def _condition(self, hold: bool) -> Compare:
        rng, keys = self.rng, self.keys
        key = rng.choice(keys.plain + keys.timed + keys.gone)
        value = self.model.lookup(key)
        stale = b"stale#%d" % rng.randrange(1 << 20)
        if value is None:
            if hold:
                return Compare(key, Check.ABSENT)
            return rng.choice([Compare(key, Check.PRESENT), Compare(key, Check.VALUE, stale),
                               Compare(key, Check.ETAG, etag_of(stale))])
        if not hold:
            return rng.choice([Compare(key, Check.ABSENT), Compare(key, Check.VALUE, stale),
                               Compare(key, Check.ETAG, etag_of(stale))])
        return rng.choice([Compare(key, Check.PRESENT), Compare(key, Check.VALUE, value),
                           Compare(key, Check.ETAG, etag_of(value))])

    def _step(self) -> Step:
        rng, keys = self.rng, self.keys
        roll = rng.random()
        if roll < 0.30:
            key = rng.choice(keys.plain)
            deadline = rng.choices([None, self._future(), self._past()], [16, 3, 1])[0]
            return Store(key, self._fresh(key), deadline)
        if roll < 0.45:
            return Remove(rng.choice(keys.plain + keys.timed))
        if roll < 0.65:
            return self._increment()
        if roll < 0.75:
            return self._timed()
        if roll < 0.83:
            key = rng.choice(keys.gone)
            return Store(key, self._fresh(key), self._past())
        if roll < 0.90:
            return Fetch(rng.choice(keys.all()))
        if roll < 0.95:
            key = rng.choice(keys.plain + keys.timed)
            return Append(key, self._fresh(b"+"))
        key = rng.choice(keys.plain + keys.timed)
        return Expire(key, rng.choice([None, self._future(), self._past()]))

    def _increment(self) -> Add:
        return Add(self.rng.choice(self.keys.counters), self.rng.randrange(1, 6))

    def _timed(self) -> Step:
        """A key stored with a far deadline, overwritten keeping it, or its expiry moved."""
        rng = self.rng
        key = rng.choice(self.keys.timed)
        roll = rng.random()
        if roll < 0.6:
            return Store(key, self._fresh(key), self._future())
        if roll < 0.85:
            return Store(key, self._fresh(key), keep_ttl=True)
        return Expire(key, self._future())

    def _gone(self) -> Txn:
        """A value stored already expired, or a condition that such a key is absent."""
        rng, keys = self.rng, self.keys
        key = rng.choice(keys.gone)
        if rng.random() < 0.6:
            return Txn((), (Store(key, self._fresh(key), self._past()),))
        plain = rng.choice(keys.plain)
        return Txn((Compare(key, Check.ABSENT),), (Fetch(key), Store(plain, self._fresh(plain))),
                   (Store(plain, self._fresh(plain)),))

    def _refused(self) -> Txn:
        """A store, then a step that cannot run (overflow, not a number): nothing applies."""
        rng, keys = self.rng, self.keys
        plain = rng.choice(keys.plain)
        steps: list[Step] = [Store(plain, self._fresh(plain)), self._increment()]
        counter = rng.choice(keys.counters)
        words = [k for k in keys.plain + keys.timed if self.model.lookup(k) is not None]
        if (self.model.lookup(counter) or b"0") != b"0":
            steps.append(Add(counter, INT64_MAX))
        elif words:
            steps.append(Add(rng.choice(words), 1))
        return Txn((), tuple(steps))

    def _fresh(self, key: bytes) -> bytes:
        self._serial += 1
        return _value(key, self._serial, self.rng)

    def _future(self) -> int:
        return self.now + 10 * YEAR_MS + self.rng.randrange(YEAR_MS)

    def _past(self) -> int:
        return self.now - HOUR_MS - self.rng.randrange(30 * 24 * HOUR_MS)


def _txn(txn: Txn) -> Write:
    return (Op.EVALUATE, b"", txn)


class _Driver:
    """Feeds batches to the engine so that each batch is exactly one commit group."""

    def __init__(self, fs: MemFileSystem, rec: Recording) -> None:
        self.fs = fs
        self.rec = rec
        self.engine: Engine | None = None
        self._queue: list[list[int]] = []
        self._current: list[int] = []
        self._idle = threading.Event()
        self.error: str | None = None

    def journal_len(self) -> int:
        assert self.fs.journal is not None
        return len(self.fs.journal)

    def run_batches(self, engine: Engine, batches: list[list[int]]) -> None:
        """Commit ``batches`` back to back (from the engine's thread); wait until done."""
        self.engine = engine
        self._queue = list(batches[1:])
        self._idle.clear()
        self._submit(batches[0])
        if not self._idle.wait(WAIT_S):
            raise HarnessError("the engine did not commit the workload in time")
        if self.error is not None:
            raise HarnessError(self.error)

    def _submit(self, batch: list[int]) -> None:
        # One hand-over for the whole batch: the committer takes it as one group.
        assert self.engine is not None
        self._current = batch
        writes = []
        for i in batch:
            self.rec.submitted_at[i] = self.journal_len()
            action = self.rec.actions[i]
            assert not isinstance(action, Sweep)
            writes.append((*action, i))
        self.engine.submit_batch(writes)

    def sink(self, waiters: Sequence[Any], outcome: Outcome,
             results: Sequence[OperationResult | None] | None) -> None:
        """The engine's completion callback (its committer thread)."""
        position = self.journal_len()
        for n, i in enumerate(waiters):
            self.rec.acked_at[i] = position
            self.rec.results[i] = None if results is None else results[n]
        if outcome is not Outcome.OK or sorted(waiters) != self._current:
            self.error = f"batch {self._current} came back as {waiters} with {outcome.name}"
            self._idle.set()
            return
        if self._queue:
            self._submit(self._queue.pop(0))
        else:
            self._idle.set()


def record_round(config: PowerLossConfig, round_no: int,
                 fs_class: type[MemFileSystem] = MemFileSystem) -> Recording:
    """Plan one round and run it on a recording filesystem (deterministic per seed).

    ``fs_class`` lets a test run the workload on a deliberately broken filesystem;
    the journal records what it really did, so replays show its effects.
    """
    rng = random.Random(f"{config.seed}:{round_no}")
    fs = fs_class(record=True)
    assert fs.journal is not None
    options = EngineOptions(segment_bytes=config.segment_bytes, checkpoint_bytes=0)
    rec: Recording | None = None
    driver: _Driver | None = None

    def sink(waiters: Sequence[Any], outcome: Outcome,
             results: Sequence[OperationResult | None] | None) -> None:
        assert driver is not None
        driver.sink(waiters, outcome, results)

    engine = ExplorerEngine.start(fs, options, sink)
    try:
        rec = _plan(rng, config, engine.now_ms(), fs.journal)
        driver = _Driver(fs, rec)
        _run_life(engine, driver, rec.lives[0])
    finally:
        engine.close()
    engine = ExplorerEngine.start(fs, options, sink)
    try:
        _run_life(engine, driver, rec.lives[1])
    finally:
        fs.journal = None  # the power cut ends the history: close off the record
        engine.close()
    return rec


def _plan(rng: random.Random, config: PowerLossConfig, now: int,
          journal: list[FsOp]) -> Recording:
    keys = Keys.of(config)
    planner = _Planner(rng, config, keys, now)
    lives = [planner.life(), planner.life()]
    n = len(planner.actions)
    return Recording(planner.actions, planner.applied, planner.states, now, keys, lives,
                     journal=journal, submitted_at=[-1] * n, acked_at=[-1] * n,
                     results=[None] * n)


def _run_life(engine: ExplorerEngine, driver: _Driver, runs: list[Run]) -> None:
    rec = driver.rec
    for run in runs:
        rec.batches.extend(run.batches)
        driver.run_batches(engine, run.batches)
        if run.sweep is not None:
            rec.batches.append([run.sweep])
            rec.submitted_at[run.sweep] = driver.journal_len()
            rec.reclaimed[run.sweep] = engine.sweep_now()
            rec.acked_at[run.sweep] = driver.journal_len()
        if run.checkpoint:
            engine.checkpoint()
    rec.images[rec.batches[-1][-1] + 1] = image(engine)


def image(engine: Engine) -> Table:
    """The engine's table with deadlines, expired entries not yet reclaimed included."""
    return {key: (value, engine.deadline(key)) for key, value in list(engine.table.items())}


def _engine_disagrees(rec: Recording) -> tuple[int, str] | None:
    """The first action whose result the engine reported unlike the model, if any."""
    for i, action in enumerate(rec.actions):
        expected = rec.applied[i]
        if isinstance(action, Sweep):
            if rec.reclaimed[i] != expected.reclaimed:
                return i, (f"the sweep reclaimed {rec.reclaimed[i]} expired keys, the model "
                           f"{expected.reclaimed}")
        elif expected.result is not None and rec.results[i] != expected.result:
            group = next(b for b in rec.batches if i in b)
            return i, (f"{_describe(action, rec.now)} answered "
                       f"{describe_result(rec.results[i])}; by the contract (evaluated in "
                       f"order, a key past its deadline is absent) it is "
                       f"{describe_result(expected.result)}. Earlier in its commit group: "
                       + ("; ".join(f"{j}: {_describe(rec.actions[j], rec.now)}"
                                    for j in group if j < i) or "nothing"))
    for done, table in rec.images.items():
        model = rec.states[done]
        if table != model:
            key = min(k for k in table.keys() | model.keys() if table.get(k) != model.get(k))
            return done - 1, (f"after {done} actions the engine holds {key!r} as "
                              f"{describe_entry(table.get(key), rec.now)}, the model "
                              f"{describe_entry(model.get(key), rec.now)}")
    return None


# -- crash points and crash states --------------------------------------------------------


def crash_points(journal: list[FsOp], rng: random.Random, between_share: float) -> list[int]:
    """Journal prefix lengths to cut power at: next to every fsync, and some others."""
    n = len(journal)
    points = []
    for k in range(n + 1):
        near_sync = k == n or journal[k].is_sync or (k > 0 and journal[k - 1].is_sync)
        if near_sync or rng.random() < between_share:
            points.append(k)
    return points


def power_cuts(fs: MemFileSystem, rng: random.Random) -> list[tuple[str, PowerCut]]:
    """The crash states worth building from ``fs`` now, by variant name."""
    cuts = [("durable", PowerCut())]
    pending = fs.pending()
    if not pending:
        return cuts
    writes = [op for op in pending if op.kind is FsOpKind.WRITE]
    if writes:
        last = writes[-1]
        if len(last.data) > 1:
            prefix = last.data[: rng.randrange(1, len(last.data))]
            cuts.append(("torn-prefix", PowerCut(torn={last.seq: prefix})))
        garbage = rng.randbytes(rng.randrange(1, len(last.data) + 1))
        cuts.append(("torn-garbage", PowerCut(torn={last.seq: garbage})))
    data = [op.seq for op in pending if op.is_data and rng.random() < 0.5]
    entries = [op.seq for op in pending if not op.is_data]
    kept = data + entries[: rng.randrange(len(entries) + 1)]
    cuts.append(("reordered", PowerCut(keep=frozenset(kept))))
    cuts.append(("process-crash", PowerCut(keep=frozenset(op.seq for op in pending))))
    return cuts


def _describe_cut(fs: MemFileSystem, cut: PowerCut) -> str:
    pending = fs.pending()
    kept = [op.describe() for op in pending if op.seq in cut.keep]
    torn = [f"{op.describe()} (torn: {len(cut.torn[op.seq])} bytes reached the disk)"
            for op in pending if op.seq in cut.torn]
    lost = len(pending) - len(kept) - len(torn)
    parts = [f"{len(pending)} unsynced ops, {lost} lost"]
    parts.extend(f"kept {k}" for k in kept + torn)
    return "; ".join(parts)


# -- checking one state ---------------------------------------------------------------------

DISAGREES = "engine result differs from the model"


def _next_touches(rec: Recording) -> dict[int, dict[bytes, int]]:
    """Per transaction with effects: for each key it left, the next action that changes it."""
    never = len(rec.actions)
    touched: dict[bytes, int] = {}
    cleared = never
    found: dict[int, dict[bytes, int]] = {}
    for i in range(len(rec.actions) - 1, -1, -1):
        applied = rec.applied[i]
        if applied.result is not None:
            keys = {effect.key for effect in applied.effects}
            if len(keys) > 1:
                found[i] = {key: min(touched.get(key, never), cleared) for key in keys}
        for effect in applied.effects:
            touched[effect.key] = i
        if applied.cleared:
            cleared = i
    return found


class Checker:
    """Recovers crash states of one round and checks them against its model."""

    def __init__(self, config: PowerLossConfig, rec: Recording, stats: PowerLossStats) -> None:
        self.config = config
        self.rec = rec
        self.stats = stats
        self.options = EngineOptions(segment_bytes=config.segment_bytes, checkpoint_bytes=0,
                                     checkpoint_on_close=False)
        self._touches = _next_touches(rec)
        self._expired_values: dict[bytes, set[bytes]] = {}
        for applied in rec.applied:
            for effect in applied.effects:
                if effect.entry is not None and expired(effect.entry, rec.now):
                    self._expired_values.setdefault(effect.key, set()).add(effect.entry[0])

    def bounds(self, k: int) -> tuple[int, int]:
        """Actions acknowledged, and submitted, after ``k`` journal calls."""
        rec = self.rec
        acked = sum(0 <= at <= k for at in rec.acked_at)
        sent = sum(0 <= at <= k for at in rec.submitted_at)
        return acked, sent

    def check(self, sid: StateId, image_of: Callable[[], MemFileSystem]) -> Finding | None:
        """Recover the state ``image_of()`` builds; a finding if it breaks a promise."""
        acked, sent = self.bounds(sid.point)
        fs = image_of()
        fs.journal = []  # record what recovery does, to cut power during it too
        engine, failure = self._open(fs)
        if engine is None:
            return Finding("recovery refused", str(sid), failure)
        recovery_ops = list(fs.journal)
        fs.journal = None
        try:
            table = image(engine)
            shown = _shown(engine, table)
            violation = self.verify(sid.point, acked, sent, table, shown)
            if violation is not None:
                return Finding(violation[0], str(sid), violation[1])
            report = engine.recovery_report
            rng = random.Random(f"{self.config.seed}:{sid}")
            worked = bool(report.cuts or report.removed_temp_files or report.broken_snapshots)
            if worked or rng.random() < self.config.second_life_share:
                self.stats.second_lives += 1
                finding = self._second_life(sid, engine, fs, table)
                if finding is not None:
                    return finding
        finally:
            engine.close()
        if worked:
            return self._crash_during_recovery(sid, image_of, recovery_ops, table)
        return None

    def _open(self, fs: MemFileSystem) -> tuple[ExplorerEngine | None, str]:
        try:
            return ExplorerEngine.start(fs, self.options), ""
        except Exception as exc:  # noqa: BLE001 - any failure to recover is the finding
            return None, f"{type(exc).__name__}: {exc}"

    # -- the verdict --------------------------------------------------------------------
    def verify(self, k: int, acked: int, sent: int, table: Table,
               shown: State) -> tuple[str, str] | None:
        """(kind, detail) of the first broken promise of a recovered state, or None.

        The last check (the whole table is one of the allowed states) implies the
        others; they come first because they name what is wrong more precisely.
        """
        rec = self.rec
        candidates = [rec.states[acked]] if sent == acked else [rec.states[acked],
                                                                 rec.states[sent]]
        found = (self._expired_shown(table, shown, candidates)
                 or self._counters(acked, sent, shown)
                 or self._torn_transaction(sent, table))
        if found is not None:
            return found
        if any(matches(table, candidate, rec.now) for candidate in candidates):
            return None
        return self._classify(k, table, shown, candidates, self._touched(acked, sent))

    def _expired_shown(self, table: Table, shown: State,
                       candidates: list[Table]) -> tuple[str, str] | None:
        """A read shows a key whose deadline passed, or a value only ever stored expired."""
        now = self.rec.now
        kind = ViolationKind.EXPIRED_VISIBLE.value
        for key, value in shown.items():
            if expired(table[key], now):
                return kind, (f"get({key!r}) shows {describe_entry(table[key], now)}: "
                              "past its deadline")
            if value in self._expired_values.get(key, ()) and all(
                    visible(c, now).get(key) != value for c in candidates):
                return kind, (f"get({key!r}) shows {describe_entry(table[key], now)}, a "
                              "value that was stored past its deadline or expired since")
        return None

    def _counters(self, acked: int, sent: int, shown: State) -> tuple[str, str] | None:
        """Each counter: acknowledged increments <= value <= those plus the ones in flight."""
        rec = self.rec
        low_state, high_state = visible(rec.states[acked], rec.now), visible(rec.states[sent],
                                                                             rec.now)
        for counter in rec.keys.counters:
            got = counter_value(shown.get(counter))
            if got is None:
                continue  # not a number at all: the per-key oracle names it
            low = counter_value(low_state.get(counter))
            whole = counter_value(high_state.get(counter))
            assert low is not None and whole is not None
            flight = rec.applied[acked:sent]
            reset = any(a.cleared or any(e.key == counter and e.entry is None for e in a.effects)
                        for a in flight)
            more = sum(a.increments.get(counter, 0) for a in flight)
            where = f"counter {counter!r} holds {got}"
            if not reset and got < low:
                return (ViolationKind.LOST_INCREMENT.value,
                        f"{where}; its acknowledged increments make it {low}")
            if not reset and got > low + more:
                return (ViolationKind.EXCESS_INCREMENT.value,
                        f"{where}: more than {low} acknowledged plus {more} in flight")
            if got not in (low, whole):
                return (ViolationKind.NOT_A_PREFIX.value,
                        f"{where}: neither {low} (acknowledged) nor {whole} (with the whole "
                        "commit group in flight): part of a group was applied")
        return None

    def _torn_transaction(self, sent: int, table: Table) -> tuple[str, str] | None:
        """A transaction one of whose values is there, while another key it wrote, which
        nothing submitted after it changed, does not hold what it left."""
        rec, now = self.rec, self.rec.now
        for t, touches in self._touches.items():
            if t >= sent:
                continue
            final = {effect.key: effect.entry for effect in rec.applied[t].effects}
            proof = next((e.key for e in rec.applied[t].effects
                          if e.stored and e.entry is not None and final[e.key] == e.entry
                          and not expired(e.entry, rec.now) and table.get(e.key) == e.entry),
                         None)
            if proof is None:
                continue
            for key, entry in final.items():
                got = table.get(key)
                if touches[key] < sent or got == entry or (got is None
                                                           and expired(entry, rec.now)):
                    continue
                return (ViolationKind.TORN_TRANSACTION.value,
                        f"action {t}, {_describe(rec.actions[t], now)}, is there ({proof!r} holds "
                        f"its value) but {key!r}, which nothing after it changed, holds "
                        f"{describe_entry(got, now)} instead of {describe_entry(entry, now)}")
        return None

    def _touched(self, acked: int, sent: int) -> set[bytes] | None:
        """Keys the actions in flight change (None: they clear everything)."""
        touched: set[bytes] = set()
        for applied in self.rec.applied[acked:sent]:
            if applied.cleared:
                return None
            touched.update(effect.key for effect in applied.effects)
        return touched

    def _classify(self, k: int, table: Table, shown: State, candidates: list[Table],
                  touched: set[bytes] | None) -> tuple[str, str]:
        """Name what is wrong with a state that is none of ``candidates``."""
        now = self.rec.now
        found = (_wrong_deadline(table, shown, candidates, now)
                 or _half_group(table, candidates, touched, now))
        if found is not None:
            return found
        views = [visible(c, now) for c in candidates]
        violations = exact_violations(self._oracle(k, shown), shown, views)
        if violations:
            return violations[0].kind.value, violations[0].describe()
        key = min(key for key in table.keys() | candidates[0].keys()
                  if not any(_same(table.get(key), c.get(key), now) for c in candidates))
        return (ViolationKind.NOT_A_PREFIX.value,
                f"reads are right, but the entry of {key!r} past its deadline is "
                f"{describe_entry(table.get(key), now)}; the history allows "
                + " or ".join(sorted({describe_entry(c.get(key), now) for c in candidates})))

    def _oracle(self, k: int, shown: State) -> Oracle:
        """The per-key oracle of what reads show at point ``k`` (to classify a wrong state)."""
        rec = self.rec
        oracle = Oracle(dict.fromkeys(set(rec.keys.all()) | set(shown)))
        for batch in rec.batches:
            ops = [op for i in batch if rec.submitted_at[i] <= k
                   for op in self._sent(oracle, i)]
            acked = {i for i in batch if 0 <= rec.acked_at[i] <= k}
            for i, op in ops:
                if i in acked:
                    oracle.acked(op)
        return oracle

    def _sent(self, oracle: Oracle, i: int) -> Iterator[tuple[int, Any]]:
        applied = self.rec.applied[i]
        if applied.cleared:
            yield i, oracle.sent_clear()
        final = {effect.key: effect.entry for effect in applied.effects}
        for key, entry in final.items():
            if entry is None or expired(entry, self.rec.now):
                yield i, oracle.sent(key, OpKind.DELETE, None)
            else:
                yield i, oracle.sent(key, OpKind.PUT, entry[0])

    # -- after recovery -----------------------------------------------------------------
    def _second_life(self, sid: StateId, engine: ExplorerEngine, fs: MemFileSystem,
                     table: Table) -> Finding | None:
        """Write on, sweep, cut power again, recover: the new writes and the old state hold."""
        rec = self.rec
        where = f"{sid}, second life"
        model = KeyspaceModel(table, rec.now)
        writes: list[Write] = [(Op.PUT, b"second-life-a", b"a" * 100),
                               (Op.DELETE, min(table, default=b"k00"), None),
                               (Op.PUT, b"second-life-b", bytes(range(256)))]
        for op, key, value in writes:
            assert not isinstance(value, Txn)
            if engine.write(op, key, value) is not Outcome.OK:
                return Finding("second life failed", where, f"{op.name} was not OK")
            if op is Op.PUT:
                assert value is not None
                model.put(key, value)
            else:
                model.delete(key)
        txn = Txn((Compare(b"second-life-a", Check.VALUE, b"a" * 100),),
                  (Store(b"second-life-c", b"c" * 50, rec.now + 10 * YEAR_MS),
                   Store(rec.keys.gone[0], b"gone", rec.now - HOUR_MS),
                   Add(rec.keys.counters[0], 7), Remove(b"second-life-b")))
        outcome, result = engine.transact(txn)
        expected = model.transact(txn).result
        if outcome is not Outcome.OK or result != expected:
            return Finding(DISAGREES, where, f"{txn} answered {outcome.name} {result}, "
                           f"the model {expected}")
        engine.sweep_now()
        model.sweep()
        again, failure = self._open(fs.crash())
        if again is None:
            return Finding("recovery refused", where, failure)
        try:
            table = image(again)
            found = _differs(table, _shown(again, table), model.table, rec.now)
        finally:
            again.close()
        return None if found is None else Finding(found[0], where, found[1])

    def _crash_during_recovery(self, sid: StateId, image_of: Callable[[], MemFileSystem],
                               ops: list[FsOp], table: Table) -> Finding | None:
        """Cut power at each fsync boundary of recovery itself: same state after."""
        for m in crash_points(ops, random.Random(0), 0.0):
            if m == len(ops):
                continue  # recovery finished: the state checked above
            self.stats.recovery_crash_states += 1
            base = image_of()
            for op in ops[:m]:
                base.apply(op)
            engine, failure = self._open(base.crash())
            where = f"{sid}, power cut during recovery after {m} of {len(ops)} calls"
            if engine is None:
                return Finding("recovery refused", where, failure)
            try:
                again = image(engine)
                found = _differs(again, _shown(engine, again), table, self.rec.now)
            finally:
                engine.close()
            if found is not None:
                return Finding(found[0], where, f"{found[1]} (the first recovery's state)")
        return None


def _same(got: Entry | None, want: Entry | None, now: int) -> bool:
    """``got`` is ``want``, or ``want`` was past its deadline and is reclaimed."""
    return got == want or (got is None and expired(want, now))


def _wrong_deadline(table: Table, shown: State, candidates: list[Table],
                    now: int) -> tuple[str, str] | None:
    """A key that reads as an allowed value, with a deadline it never had with it."""
    for key, value in shown.items():
        entries = [c.get(key) for c in candidates]
        if any(e is not None and e[0] == value for e in entries) and table[key] not in entries:
            allowed = " or ".join(sorted({describe_entry(e, now) for e in entries}))
            return (ViolationKind.WRONG_DEADLINE.value,
                    f"{key!r} holds {describe_entry(table[key], now)}; the history allows "
                    f"{allowed}")
    return None


def _half_group(table: Table, candidates: list[Table], touched: set[bytes] | None,
                now: int) -> tuple[str, str] | None:
    """Only keys the commit group in flight changes are off, and they hold some of its
    effects but not all: the group was cut."""
    if len(candidates) != 2 or touched is None:
        return None
    before, after = candidates
    keys = table.keys() | before.keys() | after.keys()
    with_it = sorted(k for k in keys if not _same(table.get(k), before.get(k), now))
    without = sorted(k for k in keys if not _same(table.get(k), after.get(k), now))
    if not with_it or not without or not set(with_it) <= touched:
        return None
    return (ViolationKind.NOT_A_PREFIX.value,
            f"part of the commit group in flight is there: {_keys(with_it)} changed as it "
            f"changes them, {_keys(without)} are not as it leaves them")


def _keys(keys: list[bytes], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(repr(k) for k in keys[:limit]) + more


def _differs(table: Table, shown: State, expected: Table, now: int) -> tuple[str, str] | None:
    """(kind, detail) if a recovered state is not ``expected`` (reclaimed entries aside)."""
    if matches(table, expected, now):
        return None
    found = _wrong_deadline(table, shown, [expected], now)
    if found is not None:
        return found
    key = min(k for k in table.keys() | expected.keys()
              if not _same(table.get(k), expected.get(k), now))
    want = expected.get(key)
    if key in shown and (want is None or expired(want, now)):
        kind = ViolationKind.EXPIRED_VISIBLE if want is not None else ViolationKind.PHANTOM
    elif want is not None and not expired(want, now):
        kind = ViolationKind.LOST_ACKED_WRITE
    else:
        kind = ViolationKind.NOT_A_PREFIX
    return kind.value, (f"{key!r} holds {describe_entry(table.get(key), now)}, expected "
                        f"{describe_entry(want, now)}")


def _shown(engine: Engine, table: Mapping[bytes, object]) -> State:
    """What ``get`` returns for every key of the table (absent keys left out)."""
    shown = {}
    for key in table:
        value = engine.get(key)
        if value is not None:
            shown[key] = value
    return shown


def _describe(action: Action, now: int) -> str:
    if isinstance(action, Sweep):
        return "an expiry sweep"
    op, key, value = action
    if isinstance(value, Txn):
        return describe_txn(value, now)
    return f"{op.name} {key!r}"


# -- the run -------------------------------------------------------------------------------


def explore_round(config: PowerLossConfig, round_no: int, stats: PowerLossStats,
                  on_state: Callable[[int], None] | None = None,
                  fs_class: type[MemFileSystem] = MemFileSystem,
                  ) -> tuple[StateId, Finding] | None:
    """Record one round and check its crash states in order; the first finding, if any.

    An engine answer unlike the model's is found while recording; it is reported at
    point 0 of the round, whose reproduction records the round again.
    """
    rec = record_round(config, round_no, fs_class)
    _check_recording(rec)
    _count_workload(rec, stats)
    disagreement = _engine_disagrees(rec)
    if disagreement is not None:
        i, detail = disagreement
        return StateId(round_no, 0, "durable"), Finding(
            DISAGREES, f"round {round_no}, action {i} of the workload, while recording", detail)
    checker = Checker(config, rec, stats)
    only = config.only
    if only is not None:
        points = [only.point]
    else:
        points = crash_points(rec.journal, random.Random(f"{config.seed}:{round_no}:points"),
                              config.between_share)
    replayed = MemFileSystem()
    applied = 0
    for k in points:
        while applied < k:
            replayed.apply(rec.journal[applied])
            applied += 1
        stats.crash_points += 1
        rng = random.Random(f"{config.seed}:{round_no}:{k}")
        for variant, cut in power_cuts(replayed, rng):
            sid = StateId(round_no, k, variant)
            if only is not None and variant != only.variant:
                continue
            stats.states += 1
            stats.by_variant[variant] = stats.by_variant.get(variant, 0) + 1
            finding = checker.check(sid, functools.partial(replayed.crash, cut))
            if on_state is not None:
                on_state(1)
            if finding is not None:
                last = rec.journal[k - 1].describe() if k else "nothing yet"
                detail = (f"{finding.detail}. Last call before the cut: {last}. "
                          f"{_describe_cut(replayed, cut)}")
                return sid, Finding(finding.kind, finding.where, detail)
    return None


def _check_recording(rec: Recording) -> None:
    """The driver's bookkeeping is sound: every action acked, acks in submission order."""
    if min(rec.acked_at, default=0) < 0:
        raise HarnessError("a write of the workload was never acknowledged")
    if rec.acked_at != sorted(rec.acked_at):
        raise HarnessError("writes were acknowledged out of order")


def _count_workload(rec: Recording, stats: PowerLossStats) -> None:
    stats.rounds += 1
    stats.journal_ops += len(rec.journal)
    stats.fsyncs += sum(op.is_sync for op in rec.journal)
    for action, applied in zip(rec.actions, rec.applied, strict=True):
        if isinstance(action, Sweep):
            stats.sweeps += 1
            continue
        stats.acked_writes += 1
        result = applied.result
        if result is not None:
            stats.transactions += 1
            stats.failed_conditions += result.failed is not None
            stats.refused_steps += result.error is not None
        stats.increments += sum(1 for v in applied.increments.values() if v)
        for effect in applied.effects:
            if effect.stored and effect.entry is not None and effect.entry[1] is not None:
                if expired(effect.entry, rec.now):
                    stats.deadlines_past += 1
                else:
                    stats.deadlines_future += 1


def run_powerloss(config: PowerLossConfig, on_state: Callable[[int], None] | None = None,
                  fs_class: type[MemFileSystem] = MemFileSystem) -> Report:
    """Explore rounds until ``states`` crash states were checked (or the time is up)."""
    stats = PowerLossStats()
    started = time.monotonic()
    deadline = started + config.duration_s if config.duration_s is not None else None
    failed: tuple[StateId, Finding] | None = None
    round_no = config.only.round if config.only is not None else 0
    while True:
        failed = explore_round(config, round_no, stats, on_state, fs_class)
        if failed is not None:
            break
        round_no += 1
        if config.only is not None or stats.states >= config.states:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
    if config.only is not None and stats.states == 0 and failed is None:
        raise HarnessError(f"there is no crash state {config.only} (seed {config.seed})")
    return powerloss_report(config, stats, failed, time.monotonic() - started)


def powerloss_report(config: PowerLossConfig, stats: PowerLossStats,
                     failed: tuple[StateId, Finding] | None, elapsed_s: float) -> Report:
    """The summary table and JSON report of an explorer run."""
    variants = ", ".join(f"{v} {stats.by_variant.get(v, 0):,}" for v in VARIANTS)
    rows = [
        ("crash states explored", f"{stats.states:,} ({variants})"),
        ("crash points", f"{stats.crash_points:,} in {stats.rounds} rounds of "
         f"{stats.journal_ops:,} recorded calls ({stats.fsyncs:,} fsyncs)"),
        ("acknowledged writes", f"{stats.acked_writes:,}"),
        ("transactions", f"{stats.transactions:,} ({stats.failed_conditions:,} failed a "
         f"condition, {stats.refused_steps:,} refused by a step)"),
        ("counter increments", f"{stats.increments:,}"),
        ("values with deadlines", f"{stats.deadlines_future:,} far ahead, "
         f"{stats.deadlines_past:,} already past; {stats.sweeps:,} sweeps"),
        ("second lives", f"{stats.second_lives:,} (write on after recovery, cut power again)"),
        ("power cuts during recovery", f"{stats.recovery_crash_states:,}"),
        ("violations", "1 (the run stops at the first)" if failed else "0"),
        ("elapsed", f"{elapsed_s:.1f} s"),
    ]
    data = {
        "states": stats.states,
        "states_by_variant": dict(stats.by_variant),
        "crash_points": stats.crash_points,
        "rounds": stats.rounds,
        "journal_ops": stats.journal_ops,
        "fsyncs": stats.fsyncs,
        "acked_writes": stats.acked_writes,
        "transactions": stats.transactions,
        "failed_conditions": stats.failed_conditions,
        "refused_steps": stats.refused_steps,
        "increments": stats.increments,
        "deadlines_future": stats.deadlines_future,
        "deadlines_past": stats.deadlines_past,
        "sweeps": stats.sweeps,
        "second_lives": stats.second_lives,
        "recovery_crash_states": stats.recovery_crash_states,
        "violations": 1 if failed else 0,
        "elapsed_s": elapsed_s,
    }
    command = f"python -m harness powerloss --seed {config.seed}"
    if config.keys != PowerLossConfig.keys:
        command += f" --keys {config.keys}"
    findings = []
    if failed is None:
        command += f" --states {config.states}"
    else:
        sid, finding = failed
        findings.append(finding)
        command += f" --round {sid.round} --point {sid.point} --variant {sid.variant}"
        data["failed_state"] = {"round": sid.round, "point": sid.point, "variant": sid.variant}
    return Report("walkv power-loss explorer", config.seed, rows, data, findings, command)
