"""The exact oracle: states along a totally ordered history of writes.

When the order in which writes were applied is known (serial mode: one op at a time;
the power-loss explorer: one committer, writes submitted in order), the recovered
store is not just "each key plausible": it must equal the state after some prefix of
that history, as a whole. ``states_along`` computes those states; ``closest`` finds
the candidate a wrong state is nearest to, for the report.

The per-key ``Oracle`` explains *what* is wrong (lost, resurrected, phantom);
``not_a_prefix`` covers the case it cannot see: every key plausible on its own, but
the combination is not any state the history passed through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from harness.oracle import Op, OpKind, Oracle, Value, Violation, ViolationKind

State = dict[bytes, bytes]
"""A whole store: present keys and their values (absent keys are not listed)."""


def apply_op(state: State, kind: OpKind, key: bytes, value: Value) -> None:
    """The effect of one write on ``state``."""
    if kind is OpKind.PUT:
        assert value is not None
        state[key] = value
    elif kind is OpKind.DELETE:
        state.pop(key, None)
    else:
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

    In serial mode each op was sent after the previous one was answered, so the log
    order is the send order. An acknowledged op is applied; an op without a 2xx
    answer (in flight at the kill, or an error reply) may or may not be, at its place.
    With more than ``limit`` such ops the candidates are not enumerated.
    """
    unknown = [i for i, op in enumerate(oracle.log) if op.acked is None]
    if len(unknown) > limit:
        return None
    candidates = []
    for mask in range(1 << len(unknown)):
        skipped = {unknown[b] for b in range(len(unknown)) if not mask >> b & 1}
        applied = [op for i, op in enumerate(oracle.log) if i not in skipped]
        candidates.append(states_along(oracle.initial, applied)[-1])
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
    violations = oracle.check(recovered, lost, unsure).violations
    return violations or [not_a_prefix(state, candidates)]
