"""Random sequences of every engine operation against a model of the documented semantics.

The model is the committed table (expired keys stay in it until the sweep or a write
removes them), the deadlines, and the latest commit time. Expiry is judged by the wall
clock, but never below the commit time of the last group that wrote a frame; a group
that changes nothing writes no frame and leaves that time alone, so the model follows
which operations record effects. Operations of one commit group see the group's
earlier writes; a Scan lists the state the previous group left.

The wall clock is the test's: it moves forwards past deadlines and steps backwards.
The background sweeper is held off; the sweep runs when the machine says so.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import storage.engine
import storage.keyspace
from storage import (
    Add,
    Append,
    Check,
    Compare,
    Engine,
    EngineOptions,
    Expire,
    Fetch,
    Op,
    OperationResult,
    Outcome,
    Page,
    Remove,
    Scan,
    Step,
    StepResult,
    Store,
    Txn,
    TxnResult,
    Write,
)
from storage.testing.memfs import MemFileSystem
from tests.unit.test_keyspace_ops import ROOT, Clock

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
_CANONICAL_INT = re.compile(rb"-?[1-9][0-9]*|0")

KEYS = (b"a", b"a/1", b"a/2", b"b", b"n", b"\xfe\xff")
BOUNDS = (b"", b"a", b"a/", b"a/1", b"a0", b"b", b"n", b"\xfe", b"\xff")
VALUES = (b"", b"0", b"1", b"-1", b"42", b"01", b"-0", b"+1", b" 1", b"1.5", b"x",
          b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808")
DELTAS = (1, -1, 0, 7, INT64_MAX, INT64_MIN)

keys = st.sampled_from(KEYS)
values = st.sampled_from(VALUES) | st.binary(max_size=3)
deltas = st.sampled_from(DELTAS) | st.integers(-100, 100)
suffixes = st.sampled_from((b"", b"0", b"7", b"x")) | st.binary(max_size=2)
lifetimes = st.integers(-500, 3000)
"""Milliseconds from now to a deadline a step sets (at most 0: passed already)."""

CLOCK = Clock()
"""The wall clock the keyspace reads while the ``clock`` fixture is in place."""
SETTINGS = settings(max_examples=100, stateful_step_count=50, deadline=None)


def _etag(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).hexdigest().encode()


def _int64(value: bytes) -> int:
    if _CANONICAL_INT.fullmatch(value) is None or not INT64_MIN <= int(value) <= INT64_MAX:
        raise _Refused(NOT_AN_INTEGER)
    return int(value)


class _Refused(Exception):
    """A step that cannot run; its transaction applies nothing."""


class _Group:
    """One commit group's evaluation, on copies of the committed dicts."""

    def __init__(self, values: dict[bytes, bytes], deadlines: dict[bytes, int],
                 now: int) -> None:
        self.values = values
        self.deadlines = deadlines
        self.now = now
        self.changed = False
        """Some effect was recorded: the group writes a frame."""

    def lookup(self, key: bytes) -> tuple[bytes | None, int | None]:
        value, deadline = self.values.get(key), self.deadlines.get(key)
        if value is None or (deadline is not None and deadline <= self.now):
            return None, None
        return value, deadline

    def set(self, key: bytes, value: bytes, deadline: int | None) -> None:
        self.values[key] = value
        if deadline is None:
            self.deadlines.pop(key, None)
        else:
            self.deadlines[key] = deadline
        self.changed = True

    def delete(self, key: bytes) -> None:
        self.values.pop(key, None)
        self.deadlines.pop(key, None)
        self.changed = True

    def plain(self, op: Op, key: bytes, value: bytes | None) -> None:
        if op is Op.PUT:
            assert value is not None
            self.set(key, value, None)
        elif op is Op.DELETE:
            self.delete(key)
        else:
            self.values.clear()
            self.deadlines.clear()
            self.changed = True

    def txn(self, txn: Txn) -> TxnResult:
        failed = next((i for i, c in enumerate(txn.compare) if not self.holds(c)), None)
        branch = txn.then if failed is None else txn.otherwise
        saved = dict(self.values), dict(self.deadlines), self.changed
        results: list[StepResult] = []
        for index, step in enumerate(branch):
            try:
                results.append(self.step(step))
            except _Refused as exc:
                self.values, self.deadlines, self.changed = saved
                return TxnResult(False, (), failed, str(exc), index)
        return TxnResult(failed is None, tuple(results), failed)

    def holds(self, compare: Compare) -> bool:
        value = self.lookup(compare.key)[0]
        if compare.check is Check.ABSENT:
            return value is None
        if compare.check is Check.PRESENT:
            return value is not None
        if compare.check is Check.VALUE:
            return value == compare.operand
        return value is not None and _etag(value) == compare.operand

    def step(self, step: Step) -> StepResult:
        value, deadline = self.lookup(step.key)
        match step:
            case Fetch():
                return value
            case Store():
                self.set(step.key, step.value, deadline if step.keep_ttl else step.deadline)
                return value
            case Remove():
                if step.key in self.values:  # an expired key not yet swept is deleted too
                    self.delete(step.key)
                return value is not None
            case Add():
                total = (0 if value is None else _int64(value)) + step.delta
                if not INT64_MIN <= total <= INT64_MAX:
                    raise _Refused(OVERFLOW)
                self.set(step.key, b"%d" % total, deadline)
                return total
            case Append():
                joined = (value or b"") + step.suffix
                self.set(step.key, joined, deadline)
                return len(joined)
            case Expire():
                if value is not None and step.deadline is not None and step.deadline <= self.now:
                    self.delete(step.key)  # an expiry already past deletes the key
                elif value is not None and step.deadline != deadline:
                    assert step.key in self.values
                    self.set(step.key, value, step.deadline)
                return value is not None


class Model:
    """The committed state as the engine documents it (see the module docstring)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.values: dict[bytes, bytes] = {}
        self.deadlines: dict[bytes, int] = {}
        self.floor = 0
        """The commit time of the latest group that wrote a frame."""

    def now(self) -> int:
        return max(self.clock.now, self.floor)

    def live(self, key: bytes, now: int) -> bool:
        deadline = self.deadlines.get(key)
        return key in self.values and (deadline is None or deadline > now)

    def get(self, key: bytes) -> bytes | None:
        return self.values[key] if self.live(key, self.now()) else None

    def commit(self, writes: Sequence[tuple[Op, bytes, Any]]) -> list[OperationResult | None]:
        """The answers of one commit group, applied in order; a Scan lists the state the
        previous group left."""
        now = self.now()
        group = _Group(dict(self.values), dict(self.deadlines), now)
        answers: list[OperationResult | None] = []
        for op, key, value in writes:
            if isinstance(value, Scan):
                answers.append(self.scan(value, now))
            elif isinstance(value, Txn):
                answers.append(group.txn(value))
            else:
                group.plain(op, key, value)
                answers.append(None)
        if group.changed:
            self.values, self.deadlines, self.floor = group.values, group.deadlines, now
        return answers

    def scan(self, scan: Scan, now: int) -> Page:
        found = sorted(k for k in self.values if self.live(k, now) and (
            k > scan.start if scan.after else k >= scan.start) and (
            scan.end is None or k < scan.end))
        page = found[:scan.limit]
        return Page(page, [self.values[k] for k in page] if scan.values else [],
                    len(found) > scan.limit)

    def sweep(self) -> int:
        """Delete the expired keys through the log; how many there were."""
        now = self.now()
        due = [k for k in self.values if not self.live(k, now)]
        for key in due:
            del self.values[key], self.deadlines[key]
        if due:
            self.floor = now
        return len(due)


class RecordingSink:
    """Answers the engine's own waiters; for int waiters, records which group answered."""

    def __init__(self) -> None:
        self.groups = 0
        self.answers: dict[int, tuple[int, Outcome, OperationResult | None]] = {}
        self.expected = 0
        self.all_answered = threading.Event()

    def __call__(self, waiters: Sequence[Any], outcome: Outcome,
                 results: Sequence[OperationResult | None] | None) -> None:
        self.groups += 1
        for index, waiter in enumerate(waiters):
            result = None if results is None else results[index]
            if type(waiter) is int:
                self.answers[waiter] = (self.groups, outcome, result)
            else:
                waiter.deliver(outcome, result)
        if self.expected and len(self.answers) == self.expected:
            self.all_answered.set()

    def expect(self, count: int) -> None:
        self.answers.clear()
        self.all_answered.clear()
        self.expected = count


def assert_same(actual: OperationResult | None, expected: OperationResult | None) -> None:
    """Equal, with bool and int results told apart (``True == 1`` in Python)."""
    assert actual == expected
    if isinstance(actual, TxnResult) and isinstance(expected, TxnResult):
        assert [type(r) for r in actual.results] == [type(r) for r in expected.results]


class KeyspaceMachine(RuleBasedStateMachine):
    """The engine and the model, driven by the same random operations."""

    def __init__(self) -> None:
        super().__init__()
        CLOCK.now = 1_700_000_000_000
        self.fs = MemFileSystem()
        self.sink = RecordingSink()
        self.model = Model(CLOCK)
        self.engine = self._open()

    def _open(self) -> Engine:
        return Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=self.fs, sink=self.sink)

    def teardown(self) -> None:
        self.engine.close()

    # -- drawing operations against the model's current state -------------------------------
    def _key(self, data: st.DataObject) -> bytes:
        """Any key, or one with a deadline (expiry is where the edge cases are)."""
        timed = sorted(self.model.deadlines)
        return data.draw(st.sampled_from(timed) | keys if timed else keys)

    def _compare(self, data: st.DataObject) -> Compare:
        key = self._key(data)
        # UNTOUCHED needs a watcher (Redis's WATCH): tested in test_keyspace_redis_steps.
        check = data.draw(st.sampled_from([c for c in Check if c is not Check.UNTOUCHED]))
        current = self.model.get(key)
        right = current is not None and data.draw(st.booleans())
        if check is Check.VALUE:
            return Compare(key, check, current if right and current is not None
                           else data.draw(values))
        if check is Check.ETAG:
            if right and current is not None:
                return Compare(key, check, _etag(current))
            wrong = data.draw(st.sampled_from(("other", "upper", "garbage")))
            tag = _etag(current if current is not None else b"0")
            operand = {"other": _etag(data.draw(values) + b"!"), "upper": tag.upper(),
                       "garbage": b"not an etag"}[wrong]
            return Compare(key, check, operand)
        return Compare(key, check)

    def _deadline(self, data: st.DataObject, key: bytes) -> int | None:
        kind = data.draw(st.sampled_from(("none", "later", "same")))
        if kind == "same":
            return self.model.deadlines.get(key)
        return None if kind == "none" else self.model.now() + data.draw(lifetimes)

    def _step(self, data: st.DataObject) -> Step:
        key = self._key(data)
        kind = data.draw(st.sampled_from((Fetch, Store, Remove, Add, Append, Expire)))
        if kind is Fetch:
            return Fetch(key)
        if kind is Store:
            return Store(key, data.draw(values), self._deadline(data, key),
                         data.draw(st.booleans()))
        if kind is Remove:
            return Remove(key)
        if kind is Add:
            return Add(key, data.draw(deltas))
        if kind is Append:
            return Append(key, data.draw(suffixes))
        return Expire(key, self._deadline(data, key))

    def _txn(self, data: st.DataObject) -> Txn:
        def some(draw_one: Any, most: int) -> tuple[Any, ...]:
            return tuple(draw_one(data) for _ in range(data.draw(st.integers(0, most))))
        return Txn(some(self._compare, 3), some(self._step, 4), some(self._step, 3))

    def _scan(self, data: st.DataObject) -> Scan:
        return Scan(data.draw(st.sampled_from(BOUNDS)),
                    data.draw(st.none() | st.sampled_from(BOUNDS)),
                    data.draw(st.integers(1, 4)), data.draw(st.booleans()),
                    data.draw(st.booleans()))

    # -- plain writes, transactions, scans ----------------------------------------------------
    @rule(key=keys, value=st.none() | values)
    def put_or_delete(self, key: bytes, value: bytes | None) -> None:
        op = Op.DELETE if value is None else Op.PUT
        assert self.engine.write(op, key, value) is Outcome.OK
        self.model.commit([(op, key, value)])

    @precondition(lambda self: len(self.model.values) >= 3)
    @rule()
    def clear(self) -> None:
        assert self.engine.write(Op.CLEAR) is Outcome.OK
        self.model.commit([(Op.CLEAR, b"", None)])

    @rule(data=st.data())
    def transact(self, data: st.DataObject) -> None:
        txn = self._txn(data)
        outcome, result = self.engine.transact(txn)
        assert outcome is Outcome.OK
        assert_same(result, self.model.commit([(Op.EVALUATE, b"", txn)])[0])

    @rule(key=keys, value=values, lifetime=lifetimes)
    def store_expiring(self, key: bytes, value: bytes, lifetime: int) -> None:
        self._transact_one(Store(key, value, self.model.now() + lifetime))

    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        key = self._key(data)
        self._transact_one(Expire(key, self._deadline(data, key)))

    def _transact_one(self, step: Step) -> None:
        txn = Txn(then=(step,))
        assert_same(self.engine.transact(txn)[1], self.model.commit([(Op.EVALUATE, b"", txn)])[0])

    @rule(data=st.data())
    def scan(self, data: st.DataObject) -> None:
        scan = self._scan(data)
        assert_same(self.engine.scan(scan), self.model.scan(scan, self.model.now()))

    @rule(start=st.sampled_from(BOUNDS), limit=st.integers(1, 3))
    def page_through(self, start: bytes, limit: int) -> None:
        listed: list[bytes] = []
        page = self.engine.scan(Scan(start, limit=limit))
        listed += page.keys
        while page.more:
            page = self.engine.scan(Scan(listed[-1], limit=limit, after=True))
            listed += page.keys
        assert listed == self.model.scan(Scan(start, limit=len(KEYS)), self.model.now()).keys

    @rule(data=st.data())
    def one_group(self, data: st.DataObject) -> None:
        writes: list[tuple[Op, bytes, Any]] = []
        for _ in range(data.draw(st.integers(2, 6))):
            kind = data.draw(st.sampled_from(("txn", "put", "delete", "scan", "clear")))
            if kind == "txn":
                writes.append((Op.EVALUATE, b"", self._txn(data)))
            elif kind == "scan":
                writes.append((Op.EVALUATE, b"", self._scan(data)))
            elif kind == "put":
                writes.append((Op.PUT, data.draw(keys), data.draw(values)))
            else:
                writes.append((Op.DELETE, data.draw(keys), None) if kind == "delete"
                              else (Op.CLEAR, b"", None))
        self.sink.expect(len(writes))
        batch: list[Write] = [(op, key, value, i) for i, (op, key, value) in enumerate(writes)]
        self.engine.submit_batch(batch)
        assert self.sink.all_answered.wait(10)
        assert len({group for group, _, _ in self.sink.answers.values()}) == 1
        for index, expected in enumerate(self.model.commit(writes)):
            _, outcome, result = self.sink.answers[index]
            assert outcome is Outcome.OK
            assert_same(result, expected)

    # -- time, expiry, restarts -------------------------------------------------------------
    @rule(ms=st.integers(0, 2500))
    def advance_clock(self, ms: int) -> None:
        self.model.clock.now += ms

    @precondition(lambda self: bool(self.model.deadlines))
    @rule(data=st.data(), nudge=st.sampled_from((-1, 0, 1)))
    def move_clock_to_a_deadline(self, data: st.DataObject, nudge: int) -> None:
        deadline = data.draw(st.sampled_from(sorted(self.model.deadlines.values())))
        self.model.clock.now = deadline + nudge

    @rule(ms=st.integers(1, 5000))
    def step_clock_back(self, ms: int) -> None:
        self.model.clock.now -= ms

    @rule()
    def sweep(self) -> None:
        self.engine._committer.call(self.engine._committer.sweep)
        self.model.sweep()

    @rule(how=st.sampled_from(("checkpoint", "restart from a snapshot", "restart from the log")))
    def checkpoint_or_restart(self, how: str) -> None:
        if how == "checkpoint":
            self.engine.checkpoint()
            return
        self.engine.options = replace(self.engine.options,
                                      checkpoint_on_close=how == "restart from a snapshot")
        self.engine.close()
        self.engine = self._open()

    # -- what must hold after every step ------------------------------------------------------
    @invariant()
    def reads_agree_with_the_model(self) -> None:
        model = self.model
        assert (self.engine.keyspace.clock_floor, self.engine.now_ms()) == (model.floor,
                                                                            model.now())
        for key in KEYS:
            assert self.engine.get(key) == model.get(key), key
        assert dict(self.engine.table) == model.values
        for key in model.values:
            assert self.engine.deadline(key) == model.deadlines.get(key), key


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The keyspace's wall clock, set by the test; no background sweeps."""
    monkeypatch.setattr(storage.keyspace, "wall_clock_ms", CLOCK)
    monkeypatch.setattr(storage.engine, "SWEEP_INTERVAL", 3600.0)
    return CLOCK


@pytest.mark.usefixtures("clock")
def test_engine_agrees_with_the_model_over_random_operations() -> None:
    run_state_machine_as_test(KeyspaceMachine, settings=SETTINGS)


def test_a_sweep_counts_each_expired_key_once(clock: Clock) -> None:
    engine = Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=MemFileSystem())
    try:
        deadline = clock.now + 10
        engine.transact(Txn(then=(Store(b"k", b"1", deadline), Store(b"k", b"2", deadline))))
        clock.now = deadline
        engine._committer.call(engine._committer.sweep)
        assert engine.get(b"k") is None
        assert (engine.stats().reaped, engine.stats().committed[Op.DELETE]) == (1, 1)
    finally:
        engine.close()
