"""What a key may hold after a crash, given what clients saw before it.

Theory of operation. Every write a client sends is recorded as an ``Op`` with the
value of a logical clock when it was sent; a 2xx reply stamps the clock again as
``acked``. The clock ticks on one event loop thread, so program order gives real-time
order on the client side, and the server's order must respect it:

    server applied X  <  server replied to X  <  client saw X's reply (X.acked)
                      <  client sent Y (Y.sent)  <  server applied Y

So an acknowledged op X is *superseded* when some acknowledged op Y on the same key
was sent after X was acknowledged: X cannot be the final state. Every other op on the
key (acknowledged or not) may have been applied last, because ops in flight at the
crash (or answered with an error) may or may not have been applied and their
interleaving with concurrent ops is unknown. The value a key held before the workload
counts as an op acknowledged at time 0.

An op answered with an error (non-2xx) is not acknowledged, but the server has
finished with it: it may have taken effect before its answer, never after. So it too
is superseded by an acknowledged op sent after its answer. An op with no answer at
all (in flight at the kill, or its connection died) is never superseded.

``DELETE /clear`` is an op on every key: it is recorded once (``sent_clear``) and
takes part in every key's history, with the result "absent".

The recovered value of a key must be the result of one op that is not superseded. A
violation is classified as:

- phantom: a value that no op of this round wrote to this key and that is not the
  key's initial state (torn, mixed, or another key's value);
- resurrected delete: the newest acknowledged op deleted the key (or cleared the
  store), it has an older value;
- lost acknowledged write: the newest acknowledged op wrote a value, the key holds an
  older value or nothing.

Values must be unique per op (``make_value``) or phantoms and stale values could be
mistaken for allowed ones.

Requests over several keys. A transaction (``POST /txn``) is one request with an op
per key it writes (``sent_request``); the ops share its clock stamps and its fate.
Per key they are checked like any other op; ``torn_groups`` adds what only the whole
request shows: keys that every request writes together (a *group*) must hold the
values of one request, never a mix. A request the server answered by saying it
applied nothing (a failed condition: 412, or a step it could not run: 409) is
*refused*: it is not a candidate and supersedes nothing.

Counters. ``sent_increment`` records a request adding ``delta`` to some counters
(the workload increments two at a time by the same amount). A counter's value is a
sum, not the result of one op, so counters are left out of the per-key check and
``counter_violations`` bounds them instead: at least its value before the round (if
no clear could have come after) plus every acknowledged increment that no clear could
have followed, at most that value plus every increment not refused; counters written
together hold the same value.

Deadlines. A PUT with a time to live records the wall clock at send and at reply:
the server set the deadline between the two, plus the ttl (for a request with no
reply, before the kill). The recovered state is read in a ``ReadWindow``; a value
whose deadline surely passed before the reads began must read as absent (else
*expired key visible*), one whose deadline may have passed during them may read
either way. ``deadline_violations`` compares the time to live a read reports with
the deadline the value was written with (*wrong deadline*: lost, or invented).

Expiry set on a key (Redis's EXPIRE). ``sent_expire`` records an op that gives the
key's current value a deadline and leaves the value as it is. It is in the key's
history but never supersedes anything (the value it found stays allowed); while it is
not superseded by a write acknowledged after its answer, the key may read as absent
once its deadline may have passed (``may_expire``). ``next_round`` carries that
"may be gone from then on" into the next round's initial state. ``expire_violations``
checks the deadlines read back: a value an acknowledged EXPIRE surely reached must
carry a deadline, and a value no EXPIRE can have reached must carry none.

Evidence of application. A key holding the value of a PUT proves that PUT's request
took effect, acknowledged or not (``applied_requests``); the increments of such a
request (a MULTI/EXEC that sets keys and increments a counter) then count towards the
counter's lower bound as if acknowledged, so an increment lost from a request whose
other effects survived is caught.

Damage. When the harness itself destroyed log records (file damage), the ops whose
records it destroyed are passed to ``check`` as ``lost`` (their result cannot appear
and they supersede nothing) or, when a record does not say which op wrote it (a
DELETE or CLEAR among several alike, or a delete inside a transaction, which leaves
no record when its key is already absent, so the damage cannot say on which side of
it the delete fell), as ``unsure`` (they supersede nothing but may still be the
result). Everything else is checked as above: the ops acknowledged before the
damaged records must all be there.
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = bytes | None
"""A key's state: its value, or None when absent (never written or deleted)."""


class OpKind(enum.IntEnum):
    """What an op does to its key."""

    PUT = 1
    DELETE = 2
    CLEAR = 3
    EXPIRE = 4
    """Gives the key's current value a deadline ``Op.ttl`` seconds after it is applied."""
    INCR = 8
    """Adds ``Op.delta`` to a counter (harness only: no log record has this code)."""


class ViolationKind(enum.Enum):
    """How a recovered key contradicts what clients were told."""

    LOST_ACKED_WRITE = "lost acknowledged write"
    RESURRECTED_DELETE = "resurrected delete"
    PHANTOM = "phantom value"
    NOT_A_PREFIX = "not a prefix of the history"
    """Only with a known total order: each key plausible, the whole state not."""
    EXPIRED_VISIBLE = "expired key visible"
    """A read shows a value whose deadline had passed."""
    WRONG_DEADLINE = "wrong deadline"
    """A key holds an allowed value with a deadline no write gave it with that value."""
    LOST_INCREMENT = "lost acknowledged increment"
    """A counter is below the sum of its acknowledged increments."""
    EXCESS_INCREMENT = "increment from nowhere"
    """A counter is above its acknowledged increments plus every one in flight."""
    TORN_TRANSACTION = "torn transaction"
    """Some effects of a transaction are there and others are not."""


@dataclass
class Op:
    """One write sent to the server. ``acked`` is None until a 2xx reply is seen."""

    seq: int
    key: bytes
    kind: OpKind
    value: Value
    sent: int
    acked: int | None = None
    status: int | None = None
    replied: int | None = None
    """Clock when any reply (2xx or not) was read; None while unanswered."""
    request: int = -1
    """The request this op is part of (the ops of one transaction share it)."""
    refused: bool = False
    """The server answered that it applied nothing of the request."""
    delta: int = 0
    """INCR: what is added."""
    ttl: float | None = None
    """PUT: the time to live it was written with (seconds), if any."""
    sent_at: float = 0.0
    """Wall clock when sent (deadlines are wall-clock times)."""
    replied_at: float | None = None
    """Wall clock when any reply was read."""
    evaluated: bool = False
    """Part of a transaction: the server evaluates it, and a delete of a key that is
    already absent leaves no record in the log."""

    @property
    def result(self) -> Value:
        """The key's state if this op was the last one applied."""
        return self.value if self.kind is OpKind.PUT else None

    def deadline(self, killed_at: float) -> tuple[float, float] | None:
        """Earliest and latest wall-clock deadline the server can have given the value
        (PUT with a time to live, or EXPIRE)."""
        if self.ttl is None or self.kind not in (OpKind.PUT, OpKind.EXPIRE):
            return None
        latest = self.replied_at if self.replied_at is not None else killed_at
        return self.sent_at + self.ttl, latest + self.ttl


DEADLINE_SLACK_S = 0.005
"""Deadlines are kept in whole milliseconds, and the reported ttl to three decimals."""


@dataclass(frozen=True)
class ReadWindow:
    """When the state checked was read, and when the server was killed (wall clock)."""

    start: float
    end: float
    killed_at: float


@dataclass(frozen=True)
class Reading:
    """One key read back: its value, the time to live the server reported, when."""

    value: Value
    ttl: float | None
    sent: float
    done: float


def may_expire(deadline: tuple[float, float] | None, window: ReadWindow | None) -> bool:
    """Whether a deadline in ``deadline`` may have passed by the end of the reads
    (without a window: assumed so)."""
    return deadline is None or window is None or deadline[0] - DEADLINE_SLACK_S < window.end


def expiry_results(value: Value, deadline: tuple[float, float] | None,
                   window: ReadWindow | None) -> set[Value]:
    """What a read in ``window`` may show of ``value`` written with ``deadline``."""
    if deadline is None or window is None or value is None:
        return {value}
    earliest, latest = deadline
    if latest + DEADLINE_SLACK_S <= window.start:
        return {None}
    if earliest - DEADLINE_SLACK_S < window.end:
        return {value, None}
    return {value}


@dataclass(frozen=True)
class Violation:
    """One key whose recovered state no allowed history explains."""

    key: bytes
    kind: ViolationKind
    recovered: Value
    allowed: frozenset[Value]
    note: str = ""
    """What else the verdict rests on (the other keys of a group, a deadline)."""

    def describe(self) -> str:
        """One line for a test report."""
        allowed = ", ".join(sorted(short(v) for v in self.allowed))
        text = f"{self.kind.value}: key {self.key!r} holds {short(self.recovered)}"
        if self.allowed or not self.note:
            text += f"; allowed {{{allowed}}}"
        return f"{text} ({self.note})" if self.note else text


@dataclass
class CheckReport:
    """The outcome of checking every key of one crash cycle."""

    keys_checked: int
    acked_ops: int
    unknown_ops: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if no key contradicts the history."""
        return not self.violations

    def counts(self) -> Counter[ViolationKind]:
        """Violations per kind."""
        return Counter(v.kind for v in self.violations)

    def summary(self, limit: int = 20) -> str:
        """Counts per kind, then the first ``limit`` violations, one per line."""
        counts = self.counts()
        head = (
            f"{self.keys_checked} keys, {self.acked_ops} acknowledged ops, "
            f"{self.unknown_ops} unacknowledged (in flight or failed); "
            + ", ".join(f"{kind.value}: {counts[kind]}" for kind in ViolationKind)
        )
        lines = [head, *(v.describe() for v in self.violations[:limit])]
        return "\n".join(lines)


class Oracle:
    """Records ops as clients send them and checks the state recovered after a crash."""

    def __init__(self, initial: Mapping[bytes, Value] | None = None, first_seq: int = 0, *,
                 counters: frozenset[bytes] = frozenset(),
                 deadlines: Mapping[bytes, tuple[float, float]] | None = None,
                 groups: tuple[tuple[bytes, ...], ...] = (),
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.initial: dict[bytes, Value] = dict(initial or {})
        self.counters = counters
        """Keys only increments change: bounded, not checked per key."""
        self.groups = groups
        """Keys that every request writes together (transactions, counter pairs)."""
        self.initial_deadlines: dict[bytes, tuple[float, float]] = dict(deadlines or {})
        """Deadline bounds of initial values written with a time to live."""
        self.ops: dict[bytes, list[Op]] = {}
        self.clears: list[Op] = []
        """``DELETE /clear`` ops, which belong to every key's history."""
        self.increments: dict[bytes, list[Op]] = {}
        self.log: list[Op] = []
        """Every op in the order it was sent (a total order in serial mode)."""
        self._clock = 0
        self._next_seq = first_seq
        self._wall = wall_clock

    def next_seq(self) -> int:
        """Reserve a sequence number, unique across rounds, to build a value from."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def sent(self, key: bytes, kind: OpKind, value: Value, seq: int | None = None, *,
             ttl: float | None = None) -> Op:
        """Record an op at the moment its request was handed to the socket."""
        self._clock += 1
        return self._record(key, kind, value, seq, ttl=ttl)

    def sent_request(self, writes: list[tuple[bytes, Value]],
                     increments: Sequence[tuple[bytes, int]] = ()) -> list[Op]:
        """Record one request writing several keys (a value, or None: delete), and
        adding to counters (``increments``: key and delta), all or nothing."""
        self._clock += 1
        request = self._next_seq
        ops = [self._record(key, OpKind.PUT if value is not None else OpKind.DELETE, value,
                            None, request=request, evaluated=True) for key, value in writes]
        return ops + [self._record(key, OpKind.INCR, None, None, request=request, delta=delta,
                                   evaluated=True) for key, delta in increments]

    def sent_expire(self, key: bytes, ttl: float) -> Op:
        """Record a request giving ``key``'s value a deadline ``ttl`` seconds ahead."""
        self._clock += 1
        return self._record(key, OpKind.EXPIRE, None, None, ttl=ttl, evaluated=True)

    def sent_increment(self, keys: list[bytes], delta: int) -> list[Op]:
        """Record one request adding ``delta`` to each of ``keys`` (counters)."""
        self._clock += 1
        request = self._next_seq
        return [self._record(key, OpKind.INCR, None, None, request=request, delta=delta,
                             evaluated=True) for key in keys]

    def sent_clear(self) -> Op:
        """Record a ``DELETE /clear`` at the moment its request was sent."""
        return self.sent(b"", OpKind.CLEAR, None)

    def _record(self, key: bytes, kind: OpKind, value: Value, seq: int | None,
                **fields: Any) -> Op:
        op = Op(self.next_seq() if seq is None else seq, key, kind, value, sent=self._clock,
                sent_at=self._wall(), **fields)
        if op.request < 0:
            op.request = op.seq
        if kind is OpKind.CLEAR:
            self.clears.append(op)
        elif kind is OpKind.INCR:
            self.increments.setdefault(key, []).append(op)
        else:
            self.ops.setdefault(key, []).append(op)
        self.log.append(op)
        return op

    def acked(self, op: Op, status: int = 200) -> None:
        """Record a 2xx reply for ``op``."""
        self.answered_request([op], status)

    def answered(self, op: Op, status: int) -> None:
        """Record any reply; only 2xx counts as acknowledged, the rest stay unknown.

        A non-2xx write (e.g. 503 after an fsync error) may still have reached the
        log, so it is neither required nor forbidden after a crash.
        """
        self.answered_request([op], status)

    def answered_request(self, ops: list[Op], status: int, refused: bool = False) -> None:
        """Record the one reply to a request (``refused``: it said it applied nothing)."""
        self._clock += 1
        now = self._wall()
        for op in ops:
            op.replied, op.replied_at, op.status, op.refused = self._clock, now, status, refused
            if 200 <= status < 300:
                op.acked = self._clock

    def unanswered(self) -> list[Op]:
        """Ops sent with no reply yet: in flight right now."""
        return [op for op in self.log if op.status is None]

    def keys(self) -> set[bytes]:
        """Every key with an initial state or an op, counters aside."""
        return (set(self.initial) | set(self.ops)) - self.counters

    def history(self, key: bytes) -> list[Op]:
        """Every op that acts on ``key``: its own ops and every clear (refused ones aside)."""
        return [op for op in self.ops.get(key, []) + self.clears if not op.refused]

    def allowed(self, key: bytes, lost: frozenset[int] = frozenset(),
                unsure: frozenset[int] = frozenset(),
                window: ReadWindow | None = None) -> frozenset[Value]:
        """The states ``key`` may hold after a crash at this point.

        ``lost`` and ``unsure`` are op seqs whose records damage destroyed (certainly,
        or possibly): see the module docstring. ``window``: when the key was read, for
        values written with a time to live.
        """
        ops = [op for op in self.history(key) if op.seq not in lost]
        newest_acked_sent = max(
            (op.sent for op in ops if op.acked is not None and op.seq not in unsure
             and op.kind is not OpKind.EXPIRE), default=0
        )
        allowed: set[Value] = set()
        killed = window.killed_at if window is not None else 0.0
        for op in ops:
            if op.replied is not None and op.replied <= newest_acked_sent:
                continue  # superseded
            if op.kind is not OpKind.EXPIRE:
                allowed |= expiry_results(op.result, op.deadline(killed), window)
            elif may_expire(op.deadline(killed), window):
                allowed.add(None)
        if newest_acked_sent == 0:  # no acknowledged op: the initial state may remain
            allowed |= expiry_results(self.initial.get(key), self.initial_deadlines.get(key),
                                      window)
        return frozenset(allowed)

    def check(self, recovered: Mapping[bytes, Value], lost: frozenset[int] = frozenset(),
              unsure: frozenset[int] = frozenset(), window: ReadWindow | None = None,
              keys: Iterable[bytes] | None = None) -> CheckReport:
        """Compare the recovered state of every known key (or of ``keys``) against the
        history."""
        keys = self.keys() if keys is None else self.keys() & set(keys)
        report = CheckReport(
            keys_checked=len(keys),
            acked_ops=sum(op.acked is not None for op in self.log),
            unknown_ops=sum(op.acked is None for op in self.log),
        )
        for key in sorted(keys):
            violation = self._check_key(key, recovered.get(key), lost, unsure, window)
            if violation is not None:
                report.violations.append(violation)
        return report

    def next_round(self, recovered: Mapping[bytes, Value],
                   window: ReadWindow | None = None) -> Oracle:
        """A fresh oracle starting from the verified recovered state."""
        initial = {key: recovered.get(key) for key in self.keys() | self.counters}
        deadlines = {}
        killed = window.killed_at if window is not None else 0.0
        for key, value in initial.items():
            bounds = self._carried_deadline(key, value, killed)
            if bounds is not None:
                deadlines[key] = bounds
        return Oracle(initial, first_seq=self._next_seq, counters=self.counters,
                      deadlines=deadlines, groups=self.groups, wall_clock=self._wall)

    def _deadline_of(self, key: bytes, value: Value,
                     killed_at: float) -> tuple[float, float] | None:
        """Deadline bounds of the op (or initial state) that left ``value`` in ``key``."""
        if value is None:
            return None
        for op in self.ops.get(key, []):
            if op.kind is OpKind.PUT and op.value == value:
                return op.deadline(killed_at)
        return self.initial_deadlines.get(key) if self.initial.get(key) == value else None

    def _writer_of(self, key: bytes, value: Value) -> Op | None:
        """The PUT of this round that wrote ``value`` to ``key`` (values are unique)."""
        return next((op for op in self.ops.get(key, [])
                     if op.kind is OpKind.PUT and op.value == value), None)

    def _expires_after(self, key: bytes, writer: Op | None) -> list[Op]:
        """The EXPIREs on ``key`` that may have been applied after ``writer`` (None: the
        initial value, which every op of the round came after)."""
        return [op for op in self.ops.get(key, []) if op.kind is OpKind.EXPIRE and not op.refused
                and (writer is None or op.replied is None or op.replied > writer.sent)]

    def _carried_deadline(self, key: bytes, value: Value,
                          killed_at: float) -> tuple[float, float] | None:
        """Deadline bounds ``value`` carries into the next round: its writer's, and the
        earliest of the EXPIREs that may have reached it (which may never have: then no
        latest bound)."""
        bounds = self._deadline_of(key, value, killed_at)
        if value is None:
            return bounds
        expires = [op.sent_at + op.ttl for op in self._expires_after(key, self._writer_of(
            key, value)) if op.ttl is not None]
        if not expires:
            return bounds
        return min(expires + ([bounds[0]] if bounds else [])), math.inf

    def _check_key(self, key: bytes, state: Value, lost: frozenset[int],
                   unsure: frozenset[int], window: ReadWindow | None) -> Violation | None:
        allowed = self.allowed(key, lost, unsure, window)
        if state in allowed:
            return None
        return Violation(key, self.classify(key, state, window), state, allowed)

    def classify(self, key: bytes, state: Value,
                 window: ReadWindow | None = None) -> ViolationKind:
        """What kind of violation it is for ``key`` to hold ``state`` (not allowed)."""
        ops = self.history(key)
        written = {op.result for op in ops} | {self.initial.get(key)}
        if state is not None and state not in written:
            return ViolationKind.PHANTOM
        if state is not None and window is not None:
            deadline = self._deadline_of(key, state, window.killed_at)
            if expiry_results(state, deadline, window) == {None}:
                return ViolationKind.EXPIRED_VISIBLE
        acked = [op for op in ops if op.acked is not None and op.kind is not OpKind.EXPIRE]
        if not acked:  # nothing acknowledged this round: the initial value was lost
            return ViolationKind.LOST_ACKED_WRITE
        newest = max(acked, key=lambda op: op.sent)
        if newest.kind is not OpKind.PUT:
            return ViolationKind.RESURRECTED_DELETE
        return ViolationKind.LOST_ACKED_WRITE

    # -- whole requests, counters, deadlines --------------------------------------------
    def torn_groups(self, recovered: Mapping[bytes, Value],
                    lost: frozenset[int] = frozenset()) -> list[Violation]:
        """Groups whose keys do not hold the values of one request (or a clear, or their
        values before the round): a transaction applied in part."""
        found = []
        for group in self.groups:
            if any(key in self.counters for key in group):
                continue  # counters: counter_violations
            held = tuple(recovered.get(key) for key in group)
            if held not in self._group_states(group, lost):
                found.append(Violation(group[0], ViolationKind.TORN_TRANSACTION, held[0],
                                       frozenset(), _describe_group(group, held)))
        return found

    def _group_states(self, group: tuple[bytes, ...],
                      lost: frozenset[int]) -> set[tuple[Value, ...]]:
        states = {tuple(self.initial.get(key) for key in group)}
        if any(not c.refused for c in self.clears):
            states.add(tuple(None for _ in group))
        requests: dict[int, dict[bytes, Value]] = {}
        for key in group:
            for op in self.ops.get(key, []):
                if not op.refused and op.seq not in lost and op.kind is not OpKind.EXPIRE:
                    requests.setdefault(op.request, {})[key] = op.result
        states.update(tuple(writes.get(key) for key in group) for writes in requests.values()
                      if len(writes) == len(group))
        return states

    def counter_violations(self, recovered: Mapping[bytes, Value],
                           unsure_keys: frozenset[bytes] = frozenset()) -> list[Violation]:
        """Counters out of their bounds, or counters written together that differ.

        ``unsure_keys``: counters some of whose records damage destroyed (their lower
        bound is not checked).
        """
        found = []
        clears = [op for op in self.clears if not op.refused]
        applied = self.applied_requests(recovered)
        for key in sorted(self.counters):
            state = recovered.get(key)
            number = counter_value(state)
            low, high = self.counter_bounds(key, clears, applied)
            if number is None:
                found.append(Violation(key, ViolationKind.PHANTOM, state, frozenset()))
            elif number < low and key not in unsure_keys:
                found.append(Violation(key, ViolationKind.LOST_INCREMENT, state,
                                       frozenset({b"%d" % low})))
            elif number > high:
                found.append(Violation(key, ViolationKind.EXCESS_INCREMENT, state,
                                       frozenset({b"%d" % high})))
        for group in self.groups:
            if all(key in self.counters for key in group):
                values = [counter_value(recovered.get(key)) for key in group]
                if len(set(values)) > 1:
                    held = tuple(recovered.get(key) for key in group)
                    found.append(Violation(group[0], ViolationKind.TORN_TRANSACTION, held[0],
                                           frozenset(), _describe_group(group, held)))
        return found

    def counter_bounds(self, key: bytes, clears: list[Op] | None = None,
                       applied: frozenset[int] = frozenset()) -> tuple[int, int]:
        """The least and the most ``key`` may hold (see the module docstring).

        ``applied``: requests known to have taken effect (``applied_requests``), whose
        increments count towards the lower bound as if acknowledged.
        """
        if clears is None:
            clears = [op for op in self.clears if not op.refused]
        start = counter_value(self.initial.get(key)) or 0
        incs = [op for op in self.increments.get(key, []) if not op.refused]
        low = 0 if clears else start
        for op in incs:
            took_effect = op.acked is not None or op.request in applied
            if took_effect and not any(c.replied is None or c.replied > op.sent
                                       for c in clears):
                low += op.delta
        return low, start + sum(op.delta for op in incs)

    def applied_requests(self, recovered: Mapping[bytes, Value]) -> frozenset[int]:
        """Requests that surely took effect: some key holds the value one of their PUTs
        wrote (values are unique per key and op)."""
        return frozenset(op.request for key, ops in self.ops.items() for op in ops
                         if op.kind is OpKind.PUT and not op.refused
                         and recovered.get(key) == op.value)

    def expire_violations(self, readings: Mapping[bytes, Reading],
                          unsure: frozenset[int] = frozenset()) -> list[Violation]:
        """Deadlines read back against the EXPIREs sent (see the module docstring).

        A value an acknowledged EXPIRE was sent after (its writer answered first, or it
        is the initial value) must have a deadline; a value this round wrote that no
        EXPIRE can have reached must have none, and none longer than the longest that
        can have reached it. ``unsure``: ops whose records damage may have destroyed.
        """
        found = []
        for key in sorted(self.keys()):
            reading = readings.get(key)
            if reading is None or reading.value is None:
                continue
            writer = self._writer_of(key, reading.value)
            if writer is None and reading.value != self.initial.get(key):
                continue  # a phantom: the value check reports it
            expires = self._expires_after(key, writer)
            # A removal (a DEL, or an expiry the sweep carried out) whose record damage
            # may have destroyed may have been undone: an EXPIRE after it may have
            # found the key absent, and left no record.
            undone = [op.sent for op in self.history(key) if op.seq in unsure]
            kept = [op for op in expires if op.seq not in unsure and not any(
                sent < (op.replied or math.inf) for sent in undone)]
            note = _expire_mismatch(reading, writer, expires, kept)
            if note:
                found.append(Violation(key, ViolationKind.WRONG_DEADLINE, reading.value,
                                       frozenset({reading.value}), note))
        return found

    def deadline_violations(self, readings: Mapping[bytes, Reading],
                            window: ReadWindow) -> list[Violation]:
        """Values read with a time to live unlike the deadline they were written with."""
        found = []
        for key in sorted(self.keys()):
            reading = readings.get(key)
            if reading is None or reading.value is None:
                continue
            want = self._deadline_of(key, reading.value, window.killed_at)
            if _deadline_fits(reading, want):
                continue
            found.append(Violation(key, ViolationKind.WRONG_DEADLINE, reading.value,
                                   frozenset({reading.value}), _describe_deadline(reading, want)))
        return found


def counter_value(value: Value) -> int | None:
    """A counter's number (absent: 0), or None if the value is not a decimal integer."""
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        return None


def _expire_mismatch(reading: Reading, writer: Op | None, expires: list[Op],
                     kept: list[Op]) -> str:
    """Why ``reading``'s deadline cannot follow from ``expires`` (of which ``kept`` are
    surely still logged), or "" if it can."""
    sure = [op for op in kept if op.acked is not None and (
        writer is None or (writer.replied is not None and op.sent > writer.replied))]
    if reading.ttl is None:
        return (f"read with no deadline after an acknowledged EXPIRE of {sure[-1].ttl:g} s"
                if sure else "")
    if writer is None:
        return ""  # the initial value may carry a deadline from an earlier round
    longest = max((op.ttl or 0.0 for op in expires), default=None)
    if longest is None:
        return f"read with ttl {reading.ttl:.3f} s, but no EXPIRE can have reached the value"
    if reading.ttl > longest + DEADLINE_SLACK_S:
        return f"read with ttl {reading.ttl:.3f} s, longer than any EXPIRE sent ({longest:g} s)"
    return ""


def _deadline_fits(reading: Reading, want: tuple[float, float] | None) -> bool:
    if want is None or reading.ttl is None:
        return want is None and reading.ttl is None
    slack = DEADLINE_SLACK_S
    low, high = reading.sent + reading.ttl - slack, reading.done + reading.ttl + slack
    return low <= want[1] + slack and want[0] - slack <= high


def _describe_deadline(reading: Reading, want: tuple[float, float] | None) -> str:
    shown = "no deadline" if reading.ttl is None else f"ttl {reading.ttl:.3f} s"
    wanted = ("no deadline" if want is None
              else f"a deadline {want[0] - reading.sent:.3f}..{want[1] - reading.sent:.3f} s "
                   "after the read")
    return f"read with {shown}, written with {wanted}"


def _describe_group(group: tuple[bytes, ...], held: tuple[Value, ...]) -> str:
    """The keys of a group and what they hold, written together but not from one request."""
    pairs = zip(group, held, strict=True)
    return "written together: " + "; ".join(f"{key!r} = {short(value, 24)}"
                                            for key, value in pairs)


def make_value(key: bytes, seq: int, rng: random.Random, max_filler: int = 256) -> bytes:
    """A value unique to (key, seq) that also exercises binary safety.

    The readable prefix names its key and op, so a misplaced or stale value is easy to
    recognise in a report; the filler is random bytes of random length, so a torn or
    truncated value differs from every value that was written.
    """
    filler = rng.randbytes(rng.randrange(0, max_filler + 1))
    return b"%s#%d#" % (key, seq) + filler


def short(value: Value, limit: int = 40) -> str:
    """A value for a report line: its first bytes and its length, or ``<absent>``."""
    if value is None:
        return "<absent>"
    text = repr(value[:limit])
    return text + (f"...({len(value)} bytes)" if len(value) > limit else "")
