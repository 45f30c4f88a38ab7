"""The RESP crash loop's verification catches what it must, from fabricated histories.

Each test records what RESP clients sent and were answered (as ``RespWrites`` does:
SET, DEL, MSET of a slot, MULTI/EXEC setting a slot and incrementing its counter,
INCRBY, EXPIRE), fabricates the state a server recovered, and runs the loop's own
verification (``RespCrashLoop._verify``, as after every restart) or the oracle part
it rests on. A harness that cannot fail proves nothing: a lost acknowledged SET, a
torn MSET, an EXEC whose values survived without its increment and a lost EXPIRE
must each be reported, and the states a correct server may leave must not be.
"""

from __future__ import annotations

from pathlib import Path

from harness.crash.resp import RespCrashLoop, resp_mix
from harness.crash.torture import CrashConfig
from harness.oracle import OpKind, Oracle, Reading, ReadWindow, Value, Violation, ViolationKind

KILLED = 1000.0
WINDOW = ReadWindow(start=KILLED + 1.0, end=KILLED + 1.2, killed_at=KILLED)


class Clock:
    """A wall clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = KILLED - 1.0

    def __call__(self) -> float:
        return self.now


def make_loop(tmp_path: Path) -> RespCrashLoop:
    return RespCrashLoop(CrashConfig(keys=2, slots=2, counter_pairs=1, timed_keys=1), tmp_path)


def verify(loop: RespCrashLoop, recovered: dict[bytes, Value],
           ttls: dict[bytes, float] | None = None) -> list[Violation]:
    """The loop's check of one restart, every other key as it was before the round."""
    state = {key: loop.oracle.initial.get(key) for key in loop.every_key} | recovered
    readings = {key: Reading(value, (ttls or {}).get(key), WINDOW.start, WINDOW.start + 0.01)
                for key, value in state.items()}
    return loop._verify(state, readings, WINDOW, serial=False, damage=None, cycle_lsn=None)


def kinds(found: list[Violation]) -> set[ViolationKind]:
    return {v.kind for v in found}


def test_the_resp_families_put_each_slot_counter_among_the_counters(tmp_path: Path) -> None:
    loop = make_loop(tmp_path)
    mix = resp_mix(loop.config)
    assert mix == loop.mix and len(mix.slot_counters) == len(mix.slots) == 2
    assert set(mix.slot_counters) <= loop.oracle.counters
    assert {b"counter:00", b"counter:01"} <= loop.oracle.counters
    assert set(loop.every_key) >= set(mix.slot_counters) | set(mix.timed)
    assert loop.oracle.groups == mix.slots + mix.counters


def test_a_lost_acknowledged_set_is_reported(tmp_path: Path) -> None:
    loop = make_loop(tmp_path)
    key, oracle = loop.keys[0], loop.oracle
    oracle.acked(oracle.sent(key, OpKind.PUT, b"v1"))
    assert verify(loop, {key: b"v1"}) == []
    assert kinds(verify(loop, {key: None})) == {ViolationKind.LOST_ACKED_WRITE}
    # An acknowledged DEL of several keys must not be undone either.
    oracle.answered_request(oracle.sent_request([(key, None), (loop.keys[1], None)]), 200)
    assert verify(loop, {key: None}) == []
    assert kinds(verify(loop, {key: b"v1"})) == {ViolationKind.RESURRECTED_DELETE}


def test_a_torn_mset_is_reported_acknowledged_or_not(tmp_path: Path) -> None:
    loop = make_loop(tmp_path)
    oracle, slot = loop.oracle, loop.mix.slots[0]
    oracle.answered_request(oracle.sent_request([(k, b"m1") for k in slot]), 200)
    oracle.sent_request([(k, b"m2") for k in slot])  # in flight at the kill
    for held in (b"m1", b"m2"):
        assert verify(loop, dict.fromkeys(slot, held)) == []
    torn = verify(loop, {slot[0]: b"m2", slot[1]: b"m2", slot[2]: b"m1"})
    assert kinds(torn) == {ViolationKind.TORN_TRANSACTION}
    assert "written together" in torn[0].describe()
    half = verify(loop, {slot[0]: b"m1", slot[1]: b"m1", slot[2]: None})
    assert kinds(half) == {ViolationKind.TORN_TRANSACTION, ViolationKind.LOST_ACKED_WRITE}


def test_an_exec_whose_sets_survived_must_have_its_increment(tmp_path: Path) -> None:
    loop = make_loop(tmp_path)
    oracle, slot, counter = loop.oracle, loop.mix.slots[1], loop.mix.slot_counters[1]
    oracle.answered_request(
        oracle.sent_request([(k, b"e1" + k) for k in slot], [(counter, 1)]), 200)
    oracle.sent_request([(k, b"e2" + k) for k in slot], [(counter, 1)])  # in flight
    first = {k: b"e1" + k for k in slot}
    second = {k: b"e2" + k for k in slot}
    assert verify(loop, first | {counter: b"1"}) == []
    assert verify(loop, first | {counter: b"2"}) == []  # the EXEC in flight may have run
    assert verify(loop, second | {counter: b"2"}) == []
    # Its values are there, so it ran: its increment must be too.
    assert kinds(verify(loop, second | {counter: b"1"})) == {ViolationKind.LOST_INCREMENT}
    assert kinds(verify(loop, first | {counter: None})) == {ViolationKind.LOST_INCREMENT}
    assert kinds(verify(loop, first | {counter: b"3"})) == {ViolationKind.EXCESS_INCREMENT}


def test_counters_lie_between_acknowledged_and_acknowledged_plus_in_flight(
    tmp_path: Path,
) -> None:
    loop = make_loop(tmp_path)
    oracle, counter = loop.oracle, b"counter:00"
    oracle.answered_request(oracle.sent_increment([counter], 4), 200)
    oracle.sent_increment([counter], 3)  # in flight
    assert oracle.counter_bounds(counter) == (4, 7)
    assert verify(loop, {counter: b"4"}) == verify(loop, {counter: b"7"}) == []
    assert kinds(verify(loop, {counter: b"3"})) == {ViolationKind.LOST_INCREMENT}
    assert kinds(verify(loop, {counter: b"8"})) == {ViolationKind.EXCESS_INCREMENT}


def timed_loop(tmp_path: Path) -> tuple[RespCrashLoop, Oracle, bytes, Clock]:
    """A loop whose oracle runs on a clock the test moves; its one timed key holds b"v"."""
    loop, clock = make_loop(tmp_path), Clock()
    key = loop.mix.timed[0]
    loop.oracle = Oracle(dict.fromkeys(loop.every_key), counters=loop.oracle.counters,
                         groups=loop.oracle.groups, wall_clock=clock)
    loop.oracle.acked(loop.oracle.sent(key, OpKind.PUT, b"v"))
    return loop, loop.oracle, key, clock


def test_an_expire_never_supersedes_the_value_it_found(tmp_path: Path) -> None:
    loop, oracle, key, _ = timed_loop(tmp_path)
    oracle.acked(oracle.sent_expire(key, 3600))
    assert verify(loop, {key: b"v"}, {key: 3599.0}) == []
    assert kinds(verify(loop, {key: None})) == {ViolationKind.LOST_ACKED_WRITE}


def test_a_short_expire_lets_the_key_go_once_its_deadline_may_have_passed(
    tmp_path: Path,
) -> None:
    loop, oracle, key, clock = timed_loop(tmp_path)
    oracle.acked(oracle.sent_expire(key, 0.5))  # deadline ~999.5: before the reads
    assert verify(loop, {key: None}) == []
    # One that may not have run out by the end of the reads keeps the value required.
    loop2, oracle2, key2, _ = timed_loop(tmp_path / "2")
    oracle2.acked(oracle2.sent_expire(key2, 5.0))
    assert kinds(verify(loop2, {key2: None})) == {ViolationKind.LOST_ACKED_WRITE}
    # A SET acknowledged after the EXPIRE's answer clears the deadline: the key stays.
    clock.now += 0.01
    oracle.acked(oracle.sent(key, OpKind.PUT, b"w"))
    assert kinds(verify(loop, {key: None})) == {ViolationKind.LOST_ACKED_WRITE}
    assert verify(loop, {key: b"w"}) == []


def test_deadlines_read_back_must_follow_from_the_expires_sent(tmp_path: Path) -> None:
    loop, oracle, key, _ = timed_loop(tmp_path)
    assert kinds(verify(loop, {key: b"v"}, {key: 10.0})) == {ViolationKind.WRONG_DEADLINE}
    expire = oracle.sent_expire(key, 3600)
    oracle.acked(expire)
    assert verify(loop, {key: b"v"}, {key: 3599.0}) == []
    lost = verify(loop, {key: b"v"})  # the acknowledged EXPIRE's deadline is gone
    assert kinds(lost) == {ViolationKind.WRONG_DEADLINE}
    assert "no deadline after an acknowledged EXPIRE" in lost[0].describe()
    assert kinds(verify(loop, {key: b"v"}, {key: 7200.0})) == {ViolationKind.WRONG_DEADLINE}
    # Damage that destroyed the EXPIRE's record excuses its absence.
    readings = {key: Reading(b"v", None, WINDOW.start, WINDOW.start)}
    assert oracle.expire_violations(readings, frozenset({expire.seq})) == []
    # Plain keys never carry a deadline.
    plain = loop.keys[0]
    oracle.acked(oracle.sent(plain, OpKind.PUT, b"p"))
    assert kinds(verify(loop, {key: b"v", plain: b"p"}, {key: 3599.0, plain: 5.0})) == {
        ViolationKind.WRONG_DEADLINE}


def test_an_expire_after_a_delete_that_damage_undid_may_have_left_no_deadline(
    tmp_path: Path,
) -> None:
    # SET v, DEL (its record later destroyed by damage), EXPIRE (found the key absent:
    # no record). After recovery v is back without a deadline, and that is correct.
    _, oracle, key, _ = timed_loop(tmp_path)
    delete = oracle.sent_request([(key, None)])[0]
    oracle.acked(delete)
    oracle.acked(oracle.sent_expire(key, 3600))
    readings = {key: Reading(b"v", None, WINDOW.start, WINDOW.start)}
    assert [v.kind for v in oracle.expire_violations(readings)] == [
        ViolationKind.WRONG_DEADLINE]
    assert oracle.expire_violations(readings, frozenset({delete.seq})) == []


def test_an_expire_in_flight_carries_may_be_gone_into_the_next_round(tmp_path: Path) -> None:
    _, oracle, key, clock = timed_loop(tmp_path)
    oracle.sent_expire(key, 30.0)  # no answer: it may have run
    following = oracle.next_round({key: b"v"}, WINDOW)
    before = ReadWindow(start=clock.now + 10, end=clock.now + 11, killed_at=KILLED)
    after = ReadWindow(start=clock.now + 40, end=clock.now + 41, killed_at=KILLED)
    assert following.check({key: b"v"}, window=after, keys=[key]).ok
    assert following.check({key: None}, window=after, keys=[key]).ok
    assert not following.check({key: None}, window=before, keys=[key]).ok
