"""The exact oracle: states along a totally ordered history of writes.

When the order in which writes were applied is known (serial mode: one op at a time;
the power-loss explorer: one committer, writes submitted in order), the recovered
store is not just "each key plausible": it must equal the state after some prefix of
that history, as a whole. ``states_along`` computes those states; ``closest`` finds
the candidate a wrong state is nearest to, for the report.

The per-key ``Oracle`` explains *what* is wrong (lost, resurrected, phantom);
``not_a_prefix`` covers the case it cannot see: every key plausible on its own, but
the combination is not any state the history passed through.

``KeyspaceModel`` is the other half of an exact oracle when the history holds more
than plain writes: transactions with conditions, increments, appends and deadlines.
It evaluates each operation the way the engine's contract says (``storage/ops.py``:
conditions first, then one branch, all or nothing; a key past its deadline is absent
to every read and condition), written again here, independently of the engine, so
that the engine's own answers can be checked against it. Its ``Table`` keeps entries
whose deadline passed until a sweep reclaims them, as the engine does; ``matches``
allows the engine to have reclaimed such an entry earlier, and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.oracle import Op, OpKind, Oracle, Value, Violation, ViolationKind, short
from storage import (
    Add,
    Append,
    Check,
    Compare,
    Expire,
    Fetch,
    Remove,
    Step,
    StepResult,
    Store,
    Txn,
    TxnResult,
)

State = dict[bytes, bytes]
"""A whole store: present keys and their values (absent keys are not listed)."""

Entry = tuple[bytes, int | None]
"""One key as the engine holds it: value and deadline (ms since the epoch, or None)."""
Table = dict[bytes, Entry]
"""A whole store with deadlines, including entries past their deadline not yet swept."""

NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def apply_op(state: State, kind: OpKind, key: bytes, value: Value) -> None:
    """The effect of one write on ``state`` (increments are not part of a ``State``)."""
    if kind is OpKind.PUT:
        assert value is not None
        state[key] = value
    elif kind is OpKind.DELETE:
        state.pop(key, None)
    elif kind is OpKind.CLEAR:
        state.clear()


def present(recovered: Mapping[bytes, Value]) -> State:
    """A state read back per key (None = absent) as a ``State``."""
    return {key: value for key, value in recovered.items() if value is not None}


def states_along(initial: Mapping[bytes, Value], ops: Iterable[Op]) -> list[State]:
    """``result[i]`` is the state after the first ``i`` ops of ``ops``."""
    state = present(initial)
    states = [dict(state)]
    for op in ops:
        apply_op(state, op.kind, op.key, op.value)
        states.append(dict(state))
    return states


def serial_candidates(oracle: Oracle, limit: int = 4) -> list[State] | None:
    """Every state a serial history allows after a crash, or None if too many.

    In serial mode each request was sent after the previous one was answered, so the
    log order is the send order. An acknowledged request is applied; one without a 2xx
    answer (in flight at the kill, or an error reply) may or may not be, at its place,
    as a whole (all the ops of a transaction, or none); a refused one is not. With more
    than ``limit`` such requests the candidates are not enumerated. Counters are left
    out of the states (``Oracle.counter_violations`` checks them).
    """
    log = [op for op in oracle.log if not op.refused]
    unknown = sorted({op.request for op in log if op.acked is None})
    if len(unknown) > limit:
        return None
    initial = {k: v for k, v in oracle.initial.items() if k not in oracle.counters}
    candidates = []
    for mask in range(1 << len(unknown)):
        skipped = {unknown[b] for b in range(len(unknown)) if not mask >> b & 1}
        applied = [op for op in log if op.request not in skipped]
        candidates.append(states_along(initial, applied)[-1])
    return candidates


def differing_keys(a: State, b: State) -> list[bytes]:
    """Keys whose state differs between ``a`` and ``b``, sorted."""
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def closest(state: State, candidates: Sequence[State]) -> State:
    """The candidate that differs from ``state`` in the fewest keys."""
    return min(candidates, key=lambda c: len(differing_keys(state, c)))


def not_a_prefix(state: State, candidates: Sequence[State]) -> Violation:
    """The violation for a state that is none of ``candidates`` (first differing key)."""
    nearest = closest(state, candidates)
    key = differing_keys(state, nearest)[0]
    return Violation(key, ViolationKind.NOT_A_PREFIX, state.get(key), frozenset({nearest.get(key)}))


def exact_violations(oracle: Oracle, recovered: Mapping[bytes, Value],
                     candidates: Sequence[State], lost: frozenset[int] = frozenset(),
                     unsure: frozenset[int] = frozenset()) -> list[Violation]:
    """Violations of a state that must be one of ``candidates`` ([] if it is).

    The per-key oracle names what is wrong when it can; otherwise the state is
    plausible key by key but not a prefix, and that is reported.
    """
    state = present(recovered)
    if state in candidates:
        return []
    violations = oracle.check(recovered, lost, unsure, keys=recovered.keys()).violations
    return violations or [not_a_prefix(state, candidates)]


# -- the keyspace model: transactions, increments, deadlines ------------------------------


class _StepFailed(Exception):
    """A step cannot run; the transaction applies nothing (the message is the contract's)."""


@dataclass(frozen=True)
class Effect:
    """What one write did to one key: the entry it left (None: removed)."""

    key: bytes
    entry: Entry | None
    stored: bool = False
    """The value is the write's own (a PUT or ``Store``), not derived from the old one."""


@dataclass
class Applied:
    """What the model says one write does: its result and its effects, in order."""

    result: TxnResult | None = None
    effects: list[Effect] = field(default_factory=list)
    cleared: bool = False
    increments: dict[bytes, int] = field(default_factory=dict)
    """Counter key -> delta of the ``Add`` steps that took effect."""
    reclaimed: int = 0
    """Entries past their deadline that a sweep removed."""


def expired(entry: Entry | None, now: int) -> bool:
    """True if ``entry`` exists and its deadline is not after ``now``."""
    return entry is not None and entry[1] is not None and entry[1] <= now


def visible(table: Mapping[bytes, Entry], now: int) -> State:
    """The values a reader sees in ``table`` at ``now``."""
    return {key: entry[0] for key, entry in table.items() if not expired(entry, now)}


def matches(recovered: Mapping[bytes, Entry], expected: Mapping[bytes, Entry], now: int) -> bool:
    """``recovered`` is ``expected``, except that entries past their deadline may be gone."""
    if len(recovered) > len(expected):
        return False
    for key, entry in expected.items():
        if recovered.get(key) != entry and (key in recovered or not expired(entry, now)):
            return False
    return recovered.keys() <= expected.keys()


def etag_of(value: bytes) -> bytes:
    """The contract's version of a value: blake2b-128 as 32 lowercase hex digits."""
    return hashlib.blake2b(value, digest_size=16).hexdigest().encode()


def parse_counter(value: bytes) -> int:
    """The 64-bit integer ``value`` spells in canonical decimal, else _StepFailed."""
    digits = value[1:] if value[:1] == b"-" else value
    canonical = (digits == b"0" and value == b"0") or digits[:1] not in (b"", b"0")
    if len(value) > 20 or not (digits.isascii() and digits.isdigit()) or not canonical:
        raise _StepFailed(NOT_AN_INTEGER)
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise _StepFailed(NOT_AN_INTEGER)
    return number


class KeyspaceModel:
    """The engine's contract applied to a ``Table`` (see the module docstring).

    ``now`` is the one instant every deadline is judged at: a workload that gives
    deadlines far in the future or already past relative to it gets the same verdicts
    from the engine whenever it runs.
    """

    def __init__(self, table: Mapping[bytes, Entry] | None = None, now: int = 0) -> None:
        self.table: Table = dict(table or {})
        self.now = now
        self._outcome = Applied()

    def lookup(self, key: bytes) -> Value:
        """The value a read sees (None if absent or past its deadline)."""
        entry = self.table.get(key)
        return None if entry is None or expired(entry, self.now) else entry[0]

    def visible(self) -> State:
        """Every value a reader sees."""
        return visible(self.table, self.now)

    # -- writes -------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes) -> Applied:
        """A plain PUT: the value, no deadline."""
        return self._run(lambda: self._set(key, (value, None), stored=True))

    def delete(self, key: bytes) -> Applied:
        """A plain DELETE."""
        return self._run(lambda: self._remove(key))

    def clear(self) -> Applied:
        """``DELETE /clear``: every key."""
        def clear() -> None:
            self.table.clear()
            self._outcome.cleared = True
        return self._run(clear)

    def sweep(self) -> Applied:
        """Reclaim every entry past its deadline."""
        def sweep() -> None:
            for key in [k for k, e in self.table.items() if expired(e, self.now)]:
                self._remove(key)
                self._outcome.reclaimed += 1
        return self._run(sweep)

    def transact(self, txn: Txn) -> Applied:
        """Evaluate ``txn``: conditions, then one branch; nothing of it if a step fails."""
        outcome = self._outcome = Applied()
        failed = next((i for i, c in enumerate(txn.compare) if not self.holds(c)), None)
        steps = txn.then if failed is None else txn.otherwise
        saved = dict(self.table)
        results: list[StepResult] = []
        for index, step in enumerate(steps):
            try:
                results.append(self._step(step))
            except _StepFailed as exc:
                self.table = saved
                outcome.effects.clear()
                outcome.increments.clear()
                outcome.result = TxnResult(False, failed=failed, error=str(exc),
                                           error_step=index)
                return outcome
        outcome.result = TxnResult(failed is None, tuple(results), failed)
        return outcome

    def holds(self, compare: Compare) -> bool:
        """Whether one condition holds now."""
        value = self.lookup(compare.key)
        if compare.check is Check.ABSENT:
            return value is None
        if value is None:
            return False
        if compare.check is Check.PRESENT:
            return True
        if compare.check is Check.VALUE:
            return value == compare.operand
        return etag_of(value) == compare.operand

    # -- steps --------------------------------------------------------------------------
    def _step(self, step: Step) -> StepResult:
        if isinstance(step, Fetch):
            return self.lookup(step.key)
        if isinstance(step, Store):
            return self._store(step)
        if isinstance(step, Remove):
            existed = self.lookup(step.key) is not None
            self._remove(step.key)
            return existed
        if isinstance(step, Add):
            return self._add(step)
        if isinstance(step, Append):
            joined = (self.lookup(step.key) or b"") + step.suffix
            self._set(step.key, (joined, self._live_deadline(step.key)))
            return len(joined)
        if isinstance(step, Expire):
            return self._expire(step)
        raise TypeError(f"the model has no {type(step).__name__} step")

    def _store(self, step: Store) -> Value:
        old = self.lookup(step.key)
        deadline = self._live_deadline(step.key) if step.keep_ttl else step.deadline
        self._set(step.key, (step.value, deadline), stored=True)
        return old

    def _add(self, step: Add) -> int:
        value = self.lookup(step.key)
        total = (0 if value is None else parse_counter(value)) + step.delta
        if not INT64_MIN <= total <= INT64_MAX:
            raise _StepFailed(OVERFLOW)
        self._set(step.key, (str(total).encode(), self._live_deadline(step.key)))
        increments = self._outcome.increments
        increments[step.key] = increments.get(step.key, 0) + step.delta
        return total

    def _expire(self, step: Expire) -> bool:
        value = self.lookup(step.key)
        if value is None:
            return False
        if step.deadline is not None and step.deadline <= self.now:
            self._remove(step.key)  # an expiry already past deletes the key
            return True
        self._set(step.key, (value, step.deadline))
        return True

    def _live_deadline(self, key: bytes) -> int | None:
        entry = self.table.get(key)
        return None if entry is None or expired(entry, self.now) else entry[1]

    def _set(self, key: bytes, entry: Entry, stored: bool = False) -> None:
        self.table[key] = entry
        self._outcome.effects.append(Effect(key, entry, stored))

    def _remove(self, key: bytes) -> None:
        if self.table.pop(key, None) is not None:
            self._outcome.effects.append(Effect(key, None))

    def _run(self, change: Callable[[], None]) -> Applied:
        self._outcome = Applied()
        change()
        return self._outcome


def describe_txn(txn: Txn, now: int) -> str:
    """A transaction in one line, deadlines relative to ``now``."""
    text = "txn("
    if txn.compare:
        text += "if " + ", ".join(_describe_compare(c) for c in txn.compare) + "; "
    text += "then " + (", ".join(_describe_step(s, now) for s in txn.then) or "nothing")
    if txn.otherwise:
        text += "; else " + ", ".join(_describe_step(s, now) for s in txn.otherwise)
    return text + ")"


def describe_result(result: object) -> str:
    """A transaction's result in one line (anything else as ``repr``)."""
    if not isinstance(result, TxnResult):
        return repr(result)
    values = "[" + ", ".join(
        short(r, 16) if isinstance(r, bytes | None) else repr(r) for r in result.results) + "]"
    if result.error is not None:
        return f"refused at step {result.error_step}: {result.error}"
    if result.failed is not None:
        return f"condition {result.failed} failed, else-branch gave {values}"
    return f"succeeded with {values}"


def describe_entry(entry: Entry | None, now: int) -> str:
    """An entry for a report line, its deadline relative to ``now``."""
    if entry is None:
        return "<absent>"
    return short(entry[0]) + _describe_deadline(entry[1], now)


def _describe_compare(compare: Compare) -> str:
    key = repr(compare.key)
    if compare.check is Check.ABSENT:
        return f"{key} absent"
    if compare.check is Check.PRESENT:
        return f"{key} present"
    name = "value" if compare.check is Check.VALUE else "etag"
    return f"{name} of {key} == {short(compare.operand)}"


def _describe_step(step: Step, now: int) -> str:
    key = repr(getattr(step, "key", b""))
    if isinstance(step, Store):
        ttl = " keeping its deadline" if step.keep_ttl else _describe_deadline(step.deadline, now)
        return f"store {key} = {short(step.value, 16)}{ttl}"
    if isinstance(step, Add):
        return f"add {step.delta} to {key}"
    if isinstance(step, Append):
        return f"append {short(step.suffix, 16)} to {key}"
    if isinstance(step, Expire):
        return f"expire {key}{_describe_deadline(step.deadline, now) or ' never'}"
    return f"{type(step).__name__.lower()} {key}"


def _describe_deadline(deadline: int | None, now: int) -> str:
    if deadline is None:
        return ""
    hours = (deadline - now) / 3_600_000
    return f" (deadline {'+' if hours >= 0 else ''}{hours:,.1f} h)"
