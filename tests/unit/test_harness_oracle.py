"""The crash oracle decides correctly which recovered states are allowed.

Each case is a tiny history on one key, written as a list of events in the order the
client saw them, and the verdict for each possible recovered state.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import pytest

from harness.history import exact_violations, serial_candidates
from harness.oracle import Op, OpKind, Oracle, Value, ViolationKind, make_value
from harness.report import Progress

K = b"k"


@dataclass(frozen=True)
class Send:
    """The client sent op ``name``: PUT of ``value``, or DELETE when value is None."""

    name: str
    value: Value


@dataclass(frozen=True)
class Ack:
    """The client read a reply with ``status`` for op ``name``."""

    name: str
    status: int = 200


Event = Send | Ack


def replay(events: list[Event], initial: Value = None) -> Oracle:
    """Build an oracle from a history on key K."""
    oracle = Oracle({K: initial} if initial is not None else None)
    ops: dict[str, Op] = {}
    for event in events:
        if isinstance(event, Send):
            kind = OpKind.PUT if event.value is not None else OpKind.DELETE
            ops[event.name] = oracle.sent(K, kind, event.value)
        else:
            oracle.answered(ops[event.name], event.status)
    return oracle


OK = None  # verdict: the state is allowed

CASES: dict[str, tuple[list[Event], Value, dict[Value, ViolationKind | None]]] = {
    "acked put must survive": (
        [Send("a", b"1"), Ack("a")],
        None,
        {b"1": OK, None: ViolationKind.LOST_ACKED_WRITE},
    ),
    "acked delete must stay deleted": (
        [Send("a", b"1"), Ack("a"), Send("b", None), Ack("b")],
        None,
        {None: OK, b"1": ViolationKind.RESURRECTED_DELETE},
    ),
    "acked overwrite must not revert": (
        [Send("a", b"1"), Ack("a"), Send("b", b"2"), Ack("b")],
        None,
        {b"2": OK, b"1": ViolationKind.LOST_ACKED_WRITE, None: ViolationKind.LOST_ACKED_WRITE},
    ),
    "in-flight put may or may not apply": (
        [Send("a", b"1"), Ack("a"), Send("b", b"2")],
        None,
        {b"1": OK, b"2": OK, None: ViolationKind.LOST_ACKED_WRITE},
    ),
    "in-flight delete may or may not apply": (
        [Send("a", b"1"), Ack("a"), Send("b", None)],
        None,
        {b"1": OK, None: OK},
    ),
    "error reply is not an acknowledgement": (
        [Send("a", b"1"), Ack("a", 503)],
        None,
        {b"1": OK, None: OK},
    ),
    "overlapping acked ops may land in either order": (
        [Send("a", b"1"), Send("b", b"2"), Ack("b"), Ack("a")],
        None,
        {b"1": OK, b"2": OK, None: ViolationKind.LOST_ACKED_WRITE},
    ),
    "earlier-sent in-flight op may still land last": (
        [Send("a", b"1"), Send("b", b"2"), Ack("b")],
        None,
        {b"1": OK, b"2": OK, None: ViolationKind.LOST_ACKED_WRITE},
    ),
    "a value never written is a phantom": (
        [Send("a", b"1"), Ack("a")],
        None,
        {b"1-torn": ViolationKind.PHANTOM, b"": ViolationKind.PHANTOM},
    ),
    "untouched key keeps its initial value": (
        [],
        b"init",
        {b"init": OK, None: ViolationKind.LOST_ACKED_WRITE, b"x": ViolationKind.PHANTOM},
    ),
    "initial value is replaced by an acked write": (
        [Send("a", b"1"), Ack("a")],
        b"init",
        {b"1": OK, b"init": ViolationKind.LOST_ACKED_WRITE},
    ),
    "initial value survives unacknowledged writes": (
        [Send("a", None)],
        b"init",
        {b"init": OK, None: OK},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_oracle_verdicts(name: str) -> None:
    events, initial, verdicts = CASES[name]
    oracle = replay(events, initial)
    for state, want in verdicts.items():
        report = oracle.check({K: state})
        got = report.violations[0].kind if report.violations else None
        assert got == want, f"{name}: state {state!r}"


def test_report_counts_each_kind_separately() -> None:
    oracle = Oracle()
    a = oracle.sent(b"a", OpKind.PUT, b"va")
    oracle.acked(a)
    b = oracle.sent(b"b", OpKind.PUT, b"vb")
    oracle.acked(b)
    d = oracle.sent(b"b", OpKind.DELETE, None)
    oracle.acked(d)
    c = oracle.sent(b"c", OpKind.PUT, b"vc")
    oracle.acked(c)
    report = oracle.check({b"a": None, b"b": b"vb", b"c": b"vb"})
    assert not report.ok
    assert report.counts() == {
        ViolationKind.LOST_ACKED_WRITE: 1,
        ViolationKind.RESURRECTED_DELETE: 1,
        ViolationKind.PHANTOM: 1,  # another key's value is not this key's write
    }
    assert "resurrected delete: 1" in report.summary()


def test_next_round_starts_from_the_recovered_state() -> None:
    oracle = Oracle()
    op = oracle.sent(b"a", OpKind.PUT, b"1")
    oracle.acked(op)
    seq_before = oracle.next_seq()
    following = oracle.next_round({b"a": b"1"})
    assert following.next_seq() > seq_before
    assert following.check({b"a": b"1"}).ok
    assert not following.check({b"a": None}).ok


def test_unanswered_lists_ops_without_a_reply() -> None:
    oracle = Oracle()
    done = oracle.sent(b"a", OpKind.PUT, b"1")
    oracle.acked(done)
    failed = oracle.sent(b"a", OpKind.PUT, b"2")
    oracle.answered(failed, 503)
    pending = oracle.sent(b"a", OpKind.DELETE, None)
    assert oracle.unanswered() == [pending]


def test_make_value_is_unique_per_op_and_names_its_key() -> None:
    rng = random.Random(1)
    values = {make_value(b"key", seq, rng) for seq in range(1000)}
    assert len(values) == 1000
    assert all(v.startswith(b"key#") for v in values)


# -- clears, error replies, damage, and the exact (serial) check ------------------------


def test_acked_clear_removes_every_key_and_may_not_be_undone() -> None:
    oracle = Oracle({b"a": b"1", b"b": b"2"})
    clear = oracle.sent_clear()
    oracle.acked(clear)
    assert oracle.check({b"a": None, b"b": None}).ok
    report = oracle.check({b"a": b"1", b"b": None})
    assert report.counts() == {ViolationKind.RESURRECTED_DELETE: 1}


def test_clear_in_flight_may_or_may_not_apply() -> None:
    oracle = Oracle()
    put = oracle.sent(b"a", OpKind.PUT, b"1")
    oracle.acked(put)
    oracle.sent_clear()
    assert oracle.check({b"a": b"1"}).ok
    assert oracle.check({b"a": None}).ok


def test_op_answered_with_an_error_cannot_land_after_a_later_acked_op() -> None:
    oracle = Oracle()
    failed = oracle.sent(b"a", OpKind.PUT, b"1")
    oracle.answered(failed, 503)
    later = oracle.sent(b"a", OpKind.PUT, b"2")
    oracle.acked(later)
    assert oracle.check({b"a": b"2"}).ok
    assert oracle.check({b"a": b"1"}).counts() == {ViolationKind.LOST_ACKED_WRITE: 1}


def test_ops_destroyed_by_damage_no_longer_supersede_older_ones() -> None:
    oracle = Oracle()
    first = oracle.sent(b"a", OpKind.PUT, b"1")
    oracle.acked(first)
    second = oracle.sent(b"a", OpKind.PUT, b"2")
    oracle.acked(second)
    assert not oracle.check({b"a": b"1"}).ok
    assert oracle.check({b"a": b"1"}, lost=frozenset({second.seq})).ok
    # A destroyed PUT's value cannot be there any more.
    assert not oracle.check({b"a": b"2"}, lost=frozenset({second.seq})).ok
    # An op that may or may not have been destroyed: either state is allowed.
    assert oracle.check({b"a": b"1"}, unsure=frozenset({second.seq})).ok
    assert oracle.check({b"a": b"2"}, unsure=frozenset({second.seq})).ok


def test_serial_history_allows_exactly_the_state_with_or_without_the_op_in_flight() -> None:
    oracle = Oracle({b"a": None, b"b": None})
    for key, kind, value in [(b"a", OpKind.PUT, b"1"), (b"b", OpKind.PUT, b"2"),
                             (b"a", OpKind.DELETE, None)]:
        oracle.acked(oracle.sent(key, kind, value))
    oracle.sent(b"b", OpKind.PUT, b"3")  # in flight at the kill
    candidates = serial_candidates(oracle)
    assert candidates is not None
    assert sorted(map(sorted, (c.items() for c in candidates))) == [
        [(b"b", b"2")], [(b"b", b"3")]]
    assert exact_violations(oracle, {b"a": None, b"b": b"3"}, candidates) == []


def test_state_plausible_per_key_but_not_a_prefix_is_a_violation() -> None:
    # a=1 and b=2 acked, then a clear in flight: both keys kept or both gone. Either
    # key alone may be absent, but not one without the other.
    oracle = Oracle({b"a": None, b"b": None})
    oracle.acked(oracle.sent(b"a", OpKind.PUT, b"1"))
    oracle.acked(oracle.sent(b"b", OpKind.PUT, b"2"))
    oracle.sent_clear()
    candidates = serial_candidates(oracle)
    assert candidates is not None
    assert exact_violations(oracle, {b"a": None, b"b": None}, candidates) == []
    half_cleared = {b"a": b"1", b"b": None}
    assert oracle.check(half_cleared).ok  # every key alone is plausible
    wrong = exact_violations(oracle, half_cleared, candidates)
    assert [v.kind for v in wrong] == [ViolationKind.NOT_A_PREFIX]


def test_progress_never_shows_more_done_than_its_total() -> None:
    # powerloss finishes whole rounds, so it may check a few more states than asked.
    stream = io.StringIO()
    with Progress(4, "run", stream=stream) as bar:
        for _ in range(3):
            bar.advance(2)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2/4", "4/4", "6/6"]
