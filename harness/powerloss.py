"""``python -m harness powerloss``: power cuts at every fsync boundary, in-process.

Theory of operation
-------------------
SIGKILL cannot lose what the page cache holds, so it cannot catch a store that
acknowledges before fsync or forgets a directory fsync. This explorer (the ALICE /
RocksDB FaultInjectionTestFS idea) runs the storage engine itself on a recording
in-memory filesystem (``storage.testing.MemFileSystem``) and asks, for many points of
its history: what could a power cut right here leave on disk, and does recovery from
each of those states keep the promise?

1. **Record.** A seeded workload runs against ``Engine`` on ``MemFileSystem(record=
   True)``: a first life (writes in commit groups, explicit checkpoints, clean close)
   and a second (recovery from that, more writes and checkpoints, then the cut). A
   driver submits each batch of writes from the engine's completion callback, so
   every batch is exactly one commit group and the journal of filesystem calls is
   the same on every run with the same seed. The callback also stamps each write as
   acknowledged at the journal position where it ran.
2. **Choose crash points.** Every boundary next to an fsync (file or directory),
   plus a random share of the others. Point ``k`` means "the first ``k`` calls of
   the journal happened".
3. **Build crash states** for each point from ``MemFileSystem.replay``: *durable*
   (only synced data and directory entries), *torn-prefix* and *torn-garbage* (the
   last unsynced write reached the disk as a prefix, or as garbage), *reordered* (a
   random subset of unsynced data writes, directory operations kept in order up to
   a random one: metadata journaled in order, data written back in any order) and
   *process-crash* (everything written survives, as after SIGKILL).
4. **Recover and check.** ``Engine.open`` on the state, then the table must equal
   the state after every acknowledged write, or after those plus the whole batch in
   flight (a commit group is all or nothing). Nothing else: no lost or resurrected
   write, no phantom, no half group, no refusal to start. When recovery cut a torn
   tail (and for a random share of the rest) a **second life** follows: three more
   writes, another power cut, recovery again, which must hold them all; and a
   **crash during recovery**: the recovery's own calls are recorded and a power cut
   at each of its fsync boundaries must recover the same state.

Every state has an id (round, point, variant). The first violation stops the run and
prints the command that rebuilds exactly that state; points are explored in order,
so it is the earliest crash point of its round that fails.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.history import State, apply_op, exact_violations
from harness.oracle import OpKind, Oracle
from harness.report import Finding, Report
from storage import Engine, EngineOptions, Op, Outcome
from storage.testing import FsOp, FsOpKind, MemFileSystem, PowerCut

ROOT = "/db"
WAIT_S = 30.0
"""How long the driver waits for the engine to commit a batch before giving up."""

VARIANTS = ("durable", "torn-prefix", "torn-garbage", "reordered", "process-crash")

Write = tuple[Op, bytes, bytes | None]


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
    batches: int = 40
    """Commit groups per life (a round has two lives)."""
    max_batch: int = 6
    checkpoint_share: float = 0.12
    """Chance of an explicit checkpoint after each batch."""
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
    second_lives: int = 0
    recovery_crash_states: int = 0
    by_variant: dict[str, int] = field(default_factory=dict)


# -- the workload -------------------------------------------------------------------------


@dataclass
class Recording:
    """One round's workload and what the engine did with it."""

    writes: list[Write]
    batches: list[list[int]]
    """Write indices of each batch (one commit group each), in order."""
    journal: list[FsOp]
    submitted_at: list[int]
    """Per write: journal length when it was submitted."""
    acked_at: list[int]
    """Per write: journal length when its completion callback ran."""
    states: list[State]
    """``states[i]``: the table after the first ``i`` writes."""


def _value(key: bytes, n: int, rng: random.Random) -> bytes:
    """Unique per write; mostly small, some spanning frames, a few over a segment."""
    roll = rng.random()
    if roll < 0.8:
        size = rng.randrange(0, 64)
    elif roll < 0.97:
        size = rng.randrange(64, 3000)
    else:
        size = rng.randrange(4096, 9000)
    return b"%s#%d#" % (key, n) + rng.randbytes(size)


def _plan_life(rng: random.Random, config: PowerLossConfig, first: int,
               keys: list[bytes]) -> tuple[list[Write], list[int], set[int]]:
    """Writes, batch sizes and the batches followed by a checkpoint, for one life."""
    writes: list[Write] = []
    sizes: list[int] = []
    checkpoints: set[int] = set()
    for b in range(config.batches):
        # The first batch after a start or a checkpoint is submitted from outside the
        # engine's thread; only a single write is sure to form a group on its own.
        fresh = b == 0 or (b - 1) in checkpoints
        size = 1 if fresh else rng.randrange(1, config.max_batch + 1)
        for _ in range(size):
            roll = rng.random()
            key = rng.choice(keys)
            if roll < 0.02:
                writes.append((Op.CLEAR, b"", None))
            elif roll < 0.27:
                writes.append((Op.DELETE, key, None))
            else:
                writes.append((Op.PUT, key, _value(key, first + len(writes), rng)))
        sizes.append(size)
        if rng.random() < config.checkpoint_share:
            checkpoints.add(b)
    return writes, sizes, checkpoints


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
        assert self.engine is not None
        self._current = batch
        for i in batch:
            self.rec.submitted_at[i] = self.journal_len()
            op, key, value = self.rec.writes[i]
            self.engine.submit(op, key, value, i)

    def sink(self, waiters: Sequence[Any], outcome: Outcome) -> None:
        """The engine's completion callback (its committer thread)."""
        position = self.journal_len()
        for i in waiters:
            self.rec.acked_at[i] = position
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
    """Run one round's workload on a recording filesystem (deterministic per seed).

    ``fs_class`` lets a test run the workload on a deliberately broken filesystem;
    the journal records what it really did, so replays show its effects.
    """
    rng = random.Random(f"{config.seed}:{round_no}")
    keys = [b"k%02d" % i + bytes([0xC3, 0xA9, 0, 0xFF]) for i in range(config.keys)]
    lives = []
    writes: list[Write] = []
    for _ in range(2):
        life_writes, sizes, checkpoints = _plan_life(rng, config, len(writes), keys)
        lives.append((len(writes), sizes, checkpoints))
        writes.extend(life_writes)
    fs = fs_class(record=True)
    assert fs.journal is not None
    rec = Recording(writes, [], fs.journal, [-1] * len(writes), [-1] * len(writes),
                    _states(writes))
    driver = _Driver(fs, rec)
    options = EngineOptions(segment_bytes=config.segment_bytes, checkpoint_bytes=0)
    for life, (start, sizes, checkpoints) in enumerate(lives):
        engine = Engine.open(ROOT, options, fs=fs, sink=driver.sink)
        try:
            for run, checkpoint in _runs(start, sizes, checkpoints):
                rec.batches.extend(run)
                driver.run_batches(engine, run)
                if checkpoint:
                    engine.checkpoint()
        finally:
            if life == 1:
                fs.journal = None  # the power cut ends the history: close off the record
            engine.close()
    return rec


def _runs(start: int, sizes: list[int],
          checkpoints: set[int]) -> Iterator[tuple[list[list[int]], bool]]:
    """Runs of batches (as write indices), each with whether a checkpoint follows it."""
    run: list[list[int]] = []
    index = start
    for b, size in enumerate(sizes):
        run.append(list(range(index, index + size)))
        index += size
        if b in checkpoints or b == len(sizes) - 1:
            yield run, b in checkpoints
            run = []


def _states(writes: list[Write]) -> list[State]:
    """``result[i]``: the table after the first ``i`` writes."""
    table: State = {}
    states: list[State] = [{}]
    for op, key, value in writes:
        apply_op(table, OpKind(int(op)), key, value)
        states.append(dict(table))
    return states


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


class _Checker:
    """Recovers crash states of one round and checks them against its writes."""

    def __init__(self, config: PowerLossConfig, rec: Recording, stats: PowerLossStats) -> None:
        self.config = config
        self.rec = rec
        self.stats = stats
        self.options = EngineOptions(segment_bytes=config.segment_bytes, checkpoint_bytes=0,
                                     checkpoint_on_close=False)

    def allowed(self, k: int) -> list[State]:
        """States a cut after ``k`` journal calls may leave: acked, or acked + in flight."""
        rec = self.rec
        acked = sum(0 <= at <= k for at in rec.acked_at)
        sent = sum(at <= k for at in rec.submitted_at)
        return [rec.states[acked]] if sent == acked else [rec.states[acked], rec.states[sent]]

    def check(self, sid: StateId, image_of: Callable[[], MemFileSystem]) -> Finding | None:
        """Recover the state ``image_of()`` builds; a finding if it breaks a promise."""
        allowed = self.allowed(sid.point)
        image = image_of()
        image.journal = []  # record what recovery does, to cut power during it too
        engine, failure = self._open(image)
        if engine is None:
            return Finding("recovery refused", str(sid), failure)
        recovery_ops = list(image.journal)
        image.journal = None
        try:
            table = dict(engine.table)
            violations = exact_violations(self._oracle(sid.point, table), table, allowed)
            if violations:
                return Finding(violations[0].kind.value, str(sid), violations[0].describe())
            report = engine.recovery_report
            rng = random.Random(f"{self.config.seed}:{sid}")
            worked = bool(report.cuts or report.removed_temp_files or report.broken_snapshots)
            if worked or rng.random() < self.config.second_life_share:
                self.stats.second_lives += 1
                finding = self._second_life(sid, engine, image, table)
                if finding is not None:
                    return finding
        finally:
            engine.close()
        if worked:
            return self._crash_during_recovery(sid, image_of, recovery_ops, table)
        return None

    def _open(self, image: MemFileSystem) -> tuple[Engine | None, str]:
        try:
            return Engine.open(ROOT, self.options, fs=image), ""
        except Exception as exc:  # noqa: BLE001 - any failure to recover is the finding
            return None, f"{type(exc).__name__}: {exc}"

    def _second_life(self, sid: StateId, engine: Engine, image: MemFileSystem,
                     table: State) -> Finding | None:
        """Write on, cut power again, recover: the new writes and the old state hold."""
        extra: list[Write] = [(Op.PUT, b"second-life-a", b"a" * 100),
                              (Op.DELETE, min(table, default=b"k00"), None),
                              (Op.PUT, b"second-life-b", bytes(range(256)))]
        for write in extra:
            if engine.write(*write) is not Outcome.OK:
                return Finding("second life failed", str(sid), f"{write[0].name} was not OK")
        after = image.crash()
        expected = _states([(Op.PUT, k, v) for k, v in table.items()] + extra)[-1]
        again, failure = self._open(after)
        if again is None:
            return Finding("recovery refused", f"{sid}, second life", failure)
        try:
            if dict(again.table) != expected:
                return Finding("lost acknowledged write", f"{sid}, second life",
                               "writes acknowledged after recovering this state were lost")
        finally:
            again.close()
        return None

    def _crash_during_recovery(self, sid: StateId, image_of: Callable[[], MemFileSystem],
                               ops: list[FsOp], table: State) -> Finding | None:
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
                if dict(engine.table) != table:
                    return Finding("lost acknowledged write", where,
                                   "a second recovery did not reach the first one's state")
            finally:
                engine.close()
        return None

    def _oracle(self, k: int, table: State) -> Oracle:
        """The per-key oracle at point ``k`` (to classify a wrong state)."""
        rec = self.rec
        keys = {key for _, key, _ in rec.writes if key} | set(table)
        oracle = Oracle(dict.fromkeys(keys))
        for batch in rec.batches:
            ops = [oracle.sent(rec.writes[i][1], OpKind(int(rec.writes[i][0])), rec.writes[i][2])
                   for i in batch if rec.submitted_at[i] <= k]
            for i, op in zip(batch, ops, strict=False):
                if 0 <= rec.acked_at[i] <= k:
                    oracle.acked(op)
        return oracle


# -- the run -------------------------------------------------------------------------------


def explore_round(config: PowerLossConfig, round_no: int, stats: PowerLossStats,
                  on_state: Callable[[int], None] | None = None,
                  fs_class: type[MemFileSystem] = MemFileSystem,
                  ) -> tuple[StateId, Finding] | None:
    """Record one round and check its crash states in order; the first finding, if any."""
    rec = record_round(config, round_no, fs_class)
    _check_recording(rec)
    checker = _Checker(config, rec, stats)
    stats.rounds += 1
    stats.journal_ops += len(rec.journal)
    stats.fsyncs += sum(op.is_sync for op in rec.journal)
    stats.acked_writes += len(rec.writes)
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
    """The driver's bookkeeping is sound: every write acked, acks in submission order."""
    if min(rec.acked_at, default=0) < 0:
        raise HarnessError("a write of the workload was never acknowledged")
    if rec.acked_at != sorted(rec.acked_at):
        raise HarnessError("writes were acknowledged out of order")


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
    if config.only is not None and stats.states == 0:
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
