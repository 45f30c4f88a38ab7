"""The crash oracle decides correctly which recovered states are allowed.

Each case is a tiny history on one key, written as a list of events in the order the
client saw them, and the verdict for each possible recovered state. Then the parts
that span keys or time: transactions over a group of keys, refused requests,
counters, and values written with a time to live (on a clock the test moves).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.crash.torture import CrashConfig, CrashLoop
from harness.history import exact_violations, serial_candidates
from harness.oracle import (
    Op,
    OpKind,
    Oracle,
    Reading,
    ReadWindow,
    Value,
    ViolationKind,
    make_value,
)
from harness.report import Progress
from storage import Op as RecordOp

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


# -- transactions, counters and deadlines ----------------------------------------------

SLOT = (b"s/a", b"s/b", b"s/c")
PAIR = (b"c/a", b"c/b")


def group_oracle(initial: dict[bytes, Value] | None = None) -> Oracle:
    keys: dict[bytes, Value] = dict.fromkeys(SLOT + PAIR)
    return Oracle(keys | (initial or {}), counters=frozenset(PAIR), groups=(SLOT, PAIR))


def test_keys_a_transaction_writes_together_hold_one_transaction() -> None:
    oracle = group_oracle()
    first = oracle.sent_request([(b"s/a", b"a1"), (b"s/b", b"b1"), (b"s/c", None)])
    oracle.answered_request(first, 200)
    second = oracle.sent_request([(b"s/a", b"a2"), (b"s/b", b"b2"), (b"s/c", b"c2")])
    both = {b"s/a": b"a1", b"s/b": b"b1", b"s/c": None}
    assert oracle.torn_groups(both) == [] and oracle.check(both).ok
    assert oracle.torn_groups({b"s/a": b"a2", b"s/b": b"b2", b"s/c": b"c2"}) == []
    # Each key alone is plausible (the second transaction was in flight); together not.
    mixed = {b"s/a": b"a2", b"s/b": b"b1", b"s/c": None}
    assert oracle.check(mixed).ok
    torn = oracle.torn_groups(mixed)
    assert [v.kind for v in torn] == [ViolationKind.TORN_TRANSACTION]
    assert "b's/b' = b'b1'" in torn[0].describe()
    assert second[0].request == second[2].request != first[0].request


def test_a_refused_transaction_never_takes_effect() -> None:
    oracle = group_oracle()
    done = oracle.sent_request([(b"s/a", b"a1"), (b"s/b", b"b1"), (b"s/c", b"c1")])
    oracle.answered_request(done, 200)
    refused = oracle.sent_request([(b"s/a", b"a2"), (b"s/b", b"b2"), (b"s/c", b"c2")])
    oracle.answered_request(refused, 412, refused=True)
    applied = {b"s/a": b"a2", b"s/b": b"b2", b"s/c": b"c2"}
    assert oracle.check(applied).counts() == {ViolationKind.PHANTOM: 3}  # never written
    assert oracle.torn_groups(applied) != []
    # An error that is not a refusal (503) may or may not have been applied.
    failed = oracle.sent_request([(b"s/a", b"a3"), (b"s/b", b"b3"), (b"s/c", b"c3")])
    oracle.answered_request(failed, 503)
    assert oracle.check({b"s/a": b"a3", b"s/b": b"b3", b"s/c": b"c3"}).ok


def test_counter_holds_acknowledged_increments_and_at_most_those_in_flight() -> None:
    oracle = group_oracle({b"c/a": b"10", b"c/b": b"10"})
    for delta in (1, 2):
        oracle.answered_request(oracle.sent_increment(list(PAIR), delta), 200)
    oracle.sent_increment(list(PAIR), 4)  # in flight
    oracle.answered_request(oracle.sent_increment(list(PAIR), 8), 409, refused=True)
    assert oracle.counter_bounds(b"c/a") == (13, 17)
    for value, want in [(b"13", None), (b"17", None), (b"15", None),
                        (b"12", ViolationKind.LOST_INCREMENT),
                        (b"18", ViolationKind.EXCESS_INCREMENT),
                        (b"25", ViolationKind.EXCESS_INCREMENT),
                        (b"x", ViolationKind.PHANTOM)]:
        found = oracle.counter_violations({b"c/a": value, b"c/b": value})
        assert [v.kind for v in found] == ([want] * 2 if want else []), value
    # Counters are not checked as keys, and the two of a pair must agree.
    assert oracle.check({}).keys_checked == 3
    unequal = oracle.counter_violations({b"c/a": b"13", b"c/b": b"17"})
    assert [v.kind for v in unequal] == [ViolationKind.TORN_TRANSACTION]


def test_a_clear_resets_the_lower_bound_of_counters_only_before_it() -> None:
    oracle = group_oracle({b"c/a": b"10", b"c/b": b"10"})
    oracle.answered_request(oracle.sent_increment(list(PAIR), 1), 200)
    clear = oracle.sent_clear()
    oracle.acked(clear)
    oracle.answered_request(oracle.sent_increment(list(PAIR), 5), 200)
    assert oracle.counter_bounds(b"c/a") == (5, 16)
    # A clear still in flight may wipe every increment.
    oracle.sent_clear()
    assert oracle.counter_bounds(b"c/a") == (0, 16)
    # Damage that destroyed a counter's records leaves only the upper bound.
    assert oracle.counter_violations({b"c/a": b"0", b"c/b": b"0"},
                                     frozenset(PAIR)) == []


class Clock:
    """A wall clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_value_whose_ttl_surely_ran_out_must_read_as_absent() -> None:
    clock = Clock()
    oracle = Oracle({b"t": None}, wall_clock=clock)
    short = oracle.sent(b"t", OpKind.PUT, b"short", ttl=0.5)
    clock.now += 0.1
    oracle.acked(short)
    killed = clock.now + 0.1
    late = ReadWindow(start=killed + 1.0, end=killed + 1.2, killed_at=killed)
    assert oracle.check({b"t": None}, window=late).ok
    assert oracle.check({b"t": b"short"}, window=late).counts() == {
        ViolationKind.EXPIRED_VISIBLE: 1}
    # Read while the deadline may be passing: either way.
    during = ReadWindow(start=1000.45, end=1000.7, killed_at=killed)
    assert oracle.check({b"t": b"short"}, window=during).ok
    assert oracle.check({b"t": None}, window=during).ok
    # Before it: the acknowledged value must be there.
    early = ReadWindow(start=1000.2, end=1000.3, killed_at=killed)
    assert oracle.check({b"t": None}, window=early).counts() == {
        ViolationKind.LOST_ACKED_WRITE: 1}


def test_a_write_in_flight_with_a_ttl_expires_by_the_kill_plus_its_ttl() -> None:
    clock = Clock()
    oracle = Oracle({b"t": b"old"}, wall_clock=clock)
    oracle.sent(b"t", OpKind.PUT, b"new", ttl=0.2)  # no reply: applied before the kill, or not
    window = ReadWindow(start=1001.0, end=1001.1, killed_at=1000.5)
    assert oracle.check({b"t": b"old"}, window=window).ok
    assert oracle.check({b"t": None}, window=window).ok
    assert not oracle.check({b"t": b"new"}, window=window).ok


def test_deadline_read_back_must_be_the_one_written() -> None:
    clock = Clock()
    oracle = Oracle({b"t": None, b"p": None}, wall_clock=clock)
    put = oracle.sent(b"t", OpKind.PUT, b"v", ttl=3600.0)
    plain = oracle.sent(b"p", OpKind.PUT, b"w")
    clock.now += 0.01
    oracle.acked(put)
    oracle.acked(plain)
    window = ReadWindow(start=1002.0, end=1002.5, killed_at=1001.0)

    def read(value: bytes, ttl: float | None) -> Reading:
        return Reading(value, ttl, 1002.1, 1002.11)

    assert oracle.deadline_violations({b"t": read(b"v", 3597.905), b"p": read(b"w", None)},
                                      window) == []
    for readings in ({b"t": read(b"v", None)}, {b"t": read(b"v", 60.0)},
                     {b"p": read(b"w", 10.0)}):
        found = oracle.deadline_violations(readings, window)
        assert [v.kind for v in found] == [ViolationKind.WRONG_DEADLINE], readings
    # The deadline carries over to the next round with the value.
    following = oracle.next_round({b"t": b"v", b"p": b"w"}, window)
    assert following.deadline_violations({b"t": read(b"v", 3597.905)}, window) == []
    expired = ReadWindow(start=clock.now + 3700, end=clock.now + 3701, killed_at=1001.0)
    assert following.check({b"t": b"v", b"p": b"w"}, window=expired).counts() == {
        ViolationKind.EXPIRED_VISIBLE: 1}


def test_serial_candidates_take_a_transaction_in_flight_whole_or_not_at_all() -> None:
    oracle = group_oracle()
    oracle.answered_request(oracle.sent_request([(k, b"1" + k) for k in SLOT]), 200)
    oracle.sent_request([(k, b"2" + k) for k in SLOT])  # in flight
    oracle.answered_request(oracle.sent_increment(list(PAIR), 3), 200)
    candidates = serial_candidates(oracle)
    assert candidates is not None and len(candidates) == 2
    assert {tuple(c.get(k) for k in SLOT) for c in candidates} == {
        tuple(b"1" + k for k in SLOT), tuple(b"2" + k for k in SLOT)}
    assert all(not set(c) & set(PAIR) for c in candidates)


def test_deletes_inside_transactions_are_unsure_once_damage_removed_records(
    tmp_path: Path,
) -> None:
    # A transaction's delete of a key already absent leaves no log record: after damage
    # cut the log, nothing says on which side of the cut it fell.
    loop = CrashLoop(CrashConfig(keys=1, slots=1), tmp_path)
    oracle, slot = loop.oracle, loop.mix.slots[0]
    oracle.answered_request(oracle.sent_request([(k, b"1" + k) for k in slot]), 200)
    oracle.acked(oracle.sent_clear())
    oracle.answered_request(oracle.sent_request([(k, None) for k in slot]), 200)
    before_the_clear = {k: b"1" + k for k in slot}
    assert not oracle.check(before_the_clear).ok
    lost, unsure = loop._removed_ops([(RecordOp.CLEAR, b"", None)])
    assert oracle.check(before_the_clear, lost, unsure).ok
    assert oracle.torn_groups(before_the_clear, lost) == []


def test_progress_never_shows_more_done_than_its_total() -> None:
    # powerloss finishes whole rounds, so it may check a few more states than asked.
    stream = io.StringIO()
    with Progress(4, "run", stream=stream) as bar:
        for _ in range(3):
            bar.advance(2)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2/4", "4/4", "6/6"]
