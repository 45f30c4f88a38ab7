"""Transactions, compare-and-set, read-modify-write, expiry and ordered scans, against the
engine on the in-memory filesystem: results, same-group interactions, durability."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import crc32c
import msgpack
import pytest

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
    InvalidOperationError,
    Keyspace,
    Op,
    OperationResult,
    Outcome,
    Page,
    Remove,
    Scan,
    Store,
    Txn,
    TxnResult,
    etag,
)
from storage.format import (
    SNAPSHOT_HEADER_SIZE,
    SNAPSHOT_MAGIC,
    encode_segment_header,
    pack_u32,
    segment_name,
    snapshot_name,
)
from storage.ops import NOT_AN_INTEGER, OPERATION_MAX_STEPS, OVERFLOW
from storage.testing.memfs import MemFileSystem

ROOT = "/db"


class Clock:
    """The wall clock the keyspace reads, under the test's control."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(storage.keyspace, "wall_clock_ms", fake)
    return fake


@pytest.fixture
def fs() -> MemFileSystem:
    return MemFileSystem()


@pytest.fixture
def engine(fs: MemFileSystem) -> Iterator[Engine]:
    opened = Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=fs)
    yield opened
    opened.close()


def ok(engine: Engine, txn: Txn) -> TxnResult:
    outcome, result = engine.transact(txn)
    assert outcome is Outcome.OK and result is not None
    return result


def reopen(engine: Engine, fs: MemFileSystem, *, checkpoint: bool = True) -> Engine:
    engine.options = EngineOptions(checkpoint_bytes=0, checkpoint_on_close=checkpoint)
    engine.close()
    return Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=fs)


class GatedSink:
    """Collects results; lets a test hand several batches to the committer as one group."""

    def __init__(self) -> None:
        self.results: dict[Any, OperationResult | None] = {}
        self.outcomes: dict[Any, Outcome] = {}
        self.done = threading.Event()
        self.expect = 0

    def __call__(self, waiters: Sequence[Any], outcome: Outcome,
                 results: Sequence[OperationResult | None] | None) -> None:
        for i, waiter in enumerate(waiters):
            self.outcomes[waiter] = outcome
            self.results[waiter] = None if results is None else results[i]
        if len(self.outcomes) >= self.expect:
            self.done.set()


class Ignored:
    """A waiter for a write whose answer the test does not need."""

    def deliver(self, outcome: Outcome, result: object) -> None:
        pass


def one_group(fs: MemFileSystem, writes: list[tuple[Op, bytes, Any]]) -> tuple[Engine, GatedSink]:
    """Commit ``writes`` (waiters 0..n-1) as a single commit group."""
    sink = GatedSink()
    engine = Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=fs, sink=sink)
    sink.expect = len(writes)
    groups_before = engine.stats().groups
    engine.submit_batch([(op, key, value, i) for i, (op, key, value) in enumerate(writes)])
    assert sink.done.wait(10)
    assert engine.stats().groups - groups_before <= 1
    return engine, sink


# -- read-modify-write in commit order --------------------------------------------------
def test_two_increments_in_one_group_both_count(fs: MemFileSystem) -> None:
    engine, sink = one_group(fs, [(Op.EVALUATE, b"", Txn(then=(Add(b"n", 1),))),
                                  (Op.EVALUATE, b"", Txn(then=(Add(b"n", 5),)))])
    try:
        assert [sink.results[0], sink.results[1]] == [TxnResult(True, (1,)),
                                                      TxnResult(True, (6,))]
        assert engine.get(b"n") == b"6"
    finally:
        engine.close()


def test_two_create_if_absent_calls_have_exactly_one_winner(fs: MemFileSystem) -> None:
    create = [(Op.EVALUATE, b"", Txn((Compare(b"lock", Check.ABSENT),), (Store(b"lock", w),)))
              for w in (b"first", b"second")]
    engine, sink = one_group(fs, create)  # type: ignore[arg-type]
    try:
        first, second = sink.results[0], sink.results[1]
        assert isinstance(first, TxnResult) and isinstance(second, TxnResult)
        assert (first.succeeded, second.succeeded) == (True, False)
        assert second.failed == 0
        assert engine.get(b"lock") == b"first"
    finally:
        engine.close()


def test_conditional_write_sees_an_unconditional_write_earlier_in_its_group(
        fs: MemFileSystem) -> None:
    engine, sink = one_group(fs, [
        (Op.PUT, b"k", b"plain"),
        (Op.EVALUATE, b"", Txn((Compare(b"k", Check.VALUE, b"plain"),), (Store(b"k", b"cas"),))),
        (Op.DELETE, b"k", None),
        (Op.EVALUATE, b"", Txn((Compare(b"k", Check.ABSENT),), (Store(b"k", b"again"),))),
    ])
    try:
        assert sink.results[1] == TxnResult(True, (b"plain",))
        assert sink.results[3] == TxnResult(True, (None,))
        assert engine.get(b"k") == b"again"
    finally:
        engine.close()


def test_transaction_against_concurrent_single_writes_is_all_or_nothing(
        fs: MemFileSystem) -> None:
    move = Txn((Compare(b"from", Check.VALUE, b"10"),),
               (Store(b"from", b"0"), Store(b"to", b"10")))
    engine, sink = one_group(fs, [(Op.PUT, b"from", b"10"), (Op.PUT, b"from", b"11"),
                                  (Op.EVALUATE, b"", move)])
    try:
        result = sink.results[2]
        assert isinstance(result, TxnResult) and not result.succeeded and result.failed == 0
        assert engine.get(b"to") is None and engine.get(b"from") == b"11"
    finally:
        engine.close()


def test_step_error_applies_nothing_of_the_transaction(engine: Engine) -> None:
    assert engine.write(Op.PUT, b"word", b"abc") is Outcome.OK
    result = ok(engine, Txn(then=(Store(b"a", b"1"), Add(b"word", 1), Store(b"b", b"2"))))
    assert not result.succeeded
    assert (result.error, result.error_step) == ("value is not an integer or out of range", 1)
    assert engine.get(b"a") is None and engine.get(b"b") is None


@pytest.mark.parametrize(("start", "delta", "error"), [
    (b"9223372036854775807", 1, "increment or decrement would overflow"),
    (b"-9223372036854775808", -1, "increment or decrement would overflow"),
    (b"01", 1, "value is not an integer or out of range"),
    (b"1.5", 1, "value is not an integer or out of range"),
    (b" 1", 1, "value is not an integer or out of range"),
    (b"", 1, "value is not an integer or out of range"),
])
def test_increment_refuses_what_redis_refuses(engine: Engine, start: bytes, delta: int,
                                              error: str) -> None:
    engine.write(Op.PUT, b"n", start) if start else ok(engine, Txn(then=(Store(b"n", b""),)))
    assert ok(engine, Txn(then=(Add(b"n", delta),))).error == error
    assert engine.get(b"n") == start


def test_failed_condition_runs_the_otherwise_branch(engine: Engine) -> None:
    engine.write(Op.PUT, b"k", b"v1")
    result = ok(engine, Txn((Compare(b"k", Check.ETAG, etag(b"other").encode()),),
                            (Store(b"k", b"new"),), (Fetch(b"k"),)))
    assert result == TxnResult(False, (b"v1",), failed=0)
    assert engine.get(b"k") == b"v1"
    assert ok(engine, Txn((Compare(b"k", Check.ETAG, etag(b"v1").encode()),),
                          (Store(b"k", b"new"),))).succeeded
    assert engine.get(b"k") == b"new"


def test_append_remove_and_present_check(engine: Engine) -> None:
    assert ok(engine, Txn(then=(Append(b"log", b"ab"), Append(b"log", b"cd")))).results == (2, 4)
    assert ok(engine, Txn((Compare(b"log", Check.PRESENT),),
                          (Remove(b"log"), Remove(b"log")))).results == (True, False)
    assert engine.get(b"log") is None


def test_transaction_effects_are_one_frame_and_survive_restart(engine: Engine,
                                                               fs: MemFileSystem) -> None:
    before = engine.stats().groups
    ok(engine, Txn(then=(Store(b"a", b"1"), Store(b"b", b"2"), Remove(b"c"))))
    assert engine.stats().groups == before + 1
    again = reopen(engine, fs, checkpoint=False)
    try:
        assert (again.get(b"a"), again.get(b"b")) == (b"1", b"2")
    finally:
        again.close()


def test_operations_that_change_nothing_write_no_frame(engine: Engine) -> None:
    before = engine.stats()
    result = ok(engine, Txn((Compare(b"missing", Check.PRESENT),), (Store(b"x", b"1"),)))
    assert not result.succeeded
    assert engine.scan(Scan()).keys == []
    after = engine.stats()
    assert (after.groups, after.records) == (before.groups, before.records)
    assert after.operations == before.operations + 2


@pytest.mark.parametrize("bad", [
    Txn(then=tuple(Fetch(b"k") for _ in range(OPERATION_MAX_STEPS + 1))),
    Txn(then=(Store("text", b"v"),)),  # type: ignore[arg-type]
    Txn(then=(Store(b"k", b"v", deadline=-1),)),
    Txn(then=(Add(b"k", 1 << 64),)),
    Scan(limit=0),
    b"not an operation",
])
def test_invalid_operations_are_refused_before_anything_is_queued(engine: Engine,
                                                                  bad: object) -> None:
    with pytest.raises(InvalidOperationError):
        engine.submit_batch([(Op.PUT, b"innocent", b"v", None), (Op.EVALUATE, b"", bad, None)])
    assert engine.stats().records == 0


# -- expiry -------------------------------------------------------------------------------
def test_expired_key_is_invisible_then_swept_through_the_log(engine: Engine,
                                                             clock: Clock) -> None:
    ok(engine, Txn(then=(Store(b"t", b"v", deadline=clock.now + 1000),)))
    assert engine.get(b"t") == b"v" and engine.deadline(b"t") == clock.now + 1000
    clock.now += 1000
    assert engine.get(b"t") is None
    assert ok(engine, Txn((Compare(b"t", Check.ABSENT),), ())).succeeded
    assert engine.scan(Scan()).keys == []
    deletes = engine.stats().committed[Op.DELETE]
    engine._committer.call(engine._committer.sweep)
    assert b"t" not in engine.table
    assert engine.stats().committed[Op.DELETE] == deletes + 1
    assert engine.stats().reaped == 1


def test_writes_keep_or_replace_deadlines_like_redis(engine: Engine, clock: Clock) -> None:
    later = clock.now + 60_000
    ok(engine, Txn(then=(Store(b"k", b"1", deadline=later),)))
    ok(engine, Txn(then=(Add(b"k", 1), Append(b"k", b"0"))))
    assert (engine.get(b"k"), engine.deadline(b"k")) == (b"20", later)
    ok(engine, Txn(then=(Store(b"k", b"x", keep_ttl=True),)))
    assert engine.deadline(b"k") == later
    engine.write(Op.PUT, b"k", b"plain")
    assert engine.deadline(b"k") is None
    ok(engine, Txn(then=(Store(b"k", b"y", deadline=later),)))
    assert ok(engine, Txn(then=(Expire(b"k", None), Expire(b"nope", later)))).results == (
        True, False)
    assert engine.deadline(b"k") is None


def test_increment_of_an_expired_counter_starts_from_zero(engine: Engine, clock: Clock) -> None:
    ok(engine, Txn(then=(Store(b"n", b"41", deadline=clock.now + 10),)))
    clock.now += 10
    assert ok(engine, Txn(then=(Add(b"n", 1),))).results == (1,)
    assert engine.deadline(b"n") is None


@pytest.mark.parametrize("checkpoint", [True, False], ids=["snapshot", "wal"])
def test_deadlines_survive_restart_and_keys_that_expired_while_down_are_gone(
        engine: Engine, fs: MemFileSystem, clock: Clock, checkpoint: bool) -> None:
    ok(engine, Txn(then=(Store(b"short", b"s", deadline=clock.now + 1000),
                         Store(b"long", b"l", deadline=clock.now + 10**9),
                         Store(b"plain", b"p"))))
    again = reopen(engine, fs, checkpoint=checkpoint)
    try:
        assert again.deadline(b"long") == clock.now + 10**9
        assert again.get(b"short") == b"s"
        clock.now += 5000
        assert again.get(b"short") is None and again.get(b"long") == b"l"
        assert [k for k in again.scan(Scan()).keys] == [b"long", b"plain"]
    finally:
        again.close()


def test_a_clock_stepping_back_does_not_bring_an_expired_key_back(
        engine: Engine, fs: MemFileSystem, clock: Clock) -> None:
    ok(engine, Txn(then=(Store(b"t", b"v", deadline=clock.now + 100),)))
    clock.now += 200
    engine.write(Op.PUT, b"other", b"x")  # a commit at the later time
    clock.now -= 10_000
    assert engine.get(b"t") is None
    again = reopen(engine, fs, checkpoint=False)
    try:
        assert again.get(b"t") is None
    finally:
        again.close()


# -- ordered scans ------------------------------------------------------------------------
def test_scan_pages_through_keys_in_byte_order(engine: Engine) -> None:
    keys = [b"b", b"a/2", b"a/10", b"a/1", b"\xff", b"a"]
    for key in keys:
        engine.write(Op.PUT, key, b"v-" + key)
    assert engine.scan(Scan()).keys == sorted(keys)
    first = engine.scan(Scan(b"a/", b"a0", limit=2, values=True))
    assert (first.keys, first.values, first.more) == ([b"a/1", b"a/10"],
                                                      [b"v-a/1", b"v-a/10"], True)
    rest = engine.scan(Scan(first.keys[-1], b"a0", limit=2, after=True))
    assert (rest.keys, rest.more) == ([b"a/2"], False)


def test_scan_sees_deletes_clears_and_keys_added_after_it_was_built(engine: Engine,
                                                                    fs: MemFileSystem) -> None:
    for i in range(50):
        engine.write(Op.PUT, b"k%03d" % i, b"v")
    again = reopen(engine, fs)
    try:
        again.write(Op.DELETE, b"k010")
        again.write(Op.PUT, b"k0105", b"new")
        page = again.scan(Scan(b"k009", limit=3))
        assert page.keys == [b"k009", b"k0105", b"k011"]
        again.write(Op.CLEAR)
        again.write(Op.PUT, b"z", b"1")
        assert again.scan(Scan()).keys == [b"z"]
    finally:
        again.close()


def test_key_order_built_from_a_snapshot_keeps_its_invariants(engine: Engine,
                                                              fs: MemFileSystem) -> None:
    keys = [b"%05d" % ((i * 7919) % 5000) for i in range(5000)]
    engine.submit_batch([(Op.PUT, k, b"v", Ignored()) for k in keys])
    engine.write(Op.PUT, b"last", b"v")
    again = reopen(engine, fs)
    try:
        again.keyspace.order._check()
        assert list(again.keyspace.order) == sorted(set(keys) | {b"last"})
    finally:
        again.close()


def test_notes_about_new_keys_never_outgrow_the_keyspace() -> None:
    space = Keyspace()
    for i in range(20_000):
        key = b"k%d" % i
        space.apply(bytes([Op.PUT]), [key], [b"v"], None, 1)
        space.apply(bytes([Op.DELETE]), [key], [None], None, 1)
    assert len(space._fresh) <= 4096 + 2 and len(space._gone) <= 4096 + 2
    space.catch_up()
    assert list(space.order) == []


# -- files of the previous format version -----------------------------------------------
def test_a_version_1_directory_opens(fs: MemFileSystem) -> None:
    fs.makedirs(f"{ROOT}/wal")
    fs.makedirs(f"{ROOT}/snap")
    body = msgpack.packb({b"old": b"snap", b"gone": b"x"}, use_bin_type=True)
    header = (SNAPSHOT_MAGIC + (1).to_bytes(4, "little") + bytes(4) + (2).to_bytes(8, "little")
              + (2).to_bytes(8, "little") + len(body).to_bytes(8, "little"))
    assert len(header) == SNAPSHOT_HEADER_SIZE
    _write(fs, f"{ROOT}/snap/{snapshot_name(2)}",
           header + body + pack_u32(crc32c.crc32c(body, crc32c.crc32c(header))))
    payload = msgpack.packb([3, bytes([Op.DELETE, Op.PUT]), [b"gone", b"new"], [None, b"wal"]],
                            use_bin_type=True)
    frame = len(payload).to_bytes(4, "little")
    frame += pack_u32(crc32c.crc32c(payload, crc32c.crc32c(frame))) + payload
    segment_header = bytearray(encode_segment_header(3))
    segment_header[8:12] = (1).to_bytes(4, "little")
    segment_header[20:24] = pack_u32(crc32c.crc32c(bytes(segment_header[:20])))
    _write(fs, f"{ROOT}/wal/{segment_name(3)}", bytes(segment_header) + frame)
    engine = Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=fs)
    try:
        assert dict(engine.table) == {b"old": b"snap", b"new": b"wal"}
        assert engine.last_lsn == 4
        page: Page = engine.scan(Scan())
        assert page.keys == [b"new", b"old"]
    finally:
        engine.close()


def _write(fs: MemFileSystem, path: str, data: bytes) -> None:
    fs.write_file(path, data)


def test_a_bulk_load_rebuilds_the_order_in_one_sort() -> None:
    space = Keyspace({b"k%06d" % i: b"v" for i in range(0, 100, 2)}, values_sorted=True)
    fresh = [b"k%06d" % i for i in range(99_999, 0, -2)]
    space.apply(bytes([Op.PUT]) * len(fresh), fresh, [b"v"] * len(fresh), None, 1)
    space.apply(bytes([Op.DELETE]), [b"k000002"], [None], None, 1)
    space.catch_up()
    space.order._check()
    assert list(space.order) == sorted(space.values)


def test_a_failed_transaction_leaves_its_group_as_it_found_it(fs: MemFileSystem) -> None:
    engine, sink = one_group(fs, [
        (Op.PUT, b"a", b"1"),
        (Op.PUT, b"bad", b"x"),
        (Op.EVALUATE, b"", Txn(then=(Store(b"a", b"2"), Store(b"c", b"x", deadline=10**15),
                                     Add(b"bad", 1)))),
        (Op.EVALUATE, b"", Txn(then=(Fetch(b"a"), Fetch(b"c")))),
        (Op.EVALUATE, b"", Txn(then=(Store(b"a", b"9223372036854775807"), Add(b"a", 1)))),
        (Op.EVALUATE, b"", Txn(then=(Fetch(b"a"),))),
    ])
    try:
        assert sink.results[2] == TxnResult(False, error=NOT_AN_INTEGER, error_step=2)
        assert sink.results[3] == TxnResult(True, (b"1", None))
        assert sink.results[4] == TxnResult(False, error=OVERFLOW, error_step=1)
        assert sink.results[5] == TxnResult(True, (b"1",))
        assert (engine.get(b"a"), engine.get(b"c"), engine.deadline(b"c")) == (b"1", None, None)
    finally:
        engine.close()


def test_a_deadline_already_past_hides_the_key_from_later_steps_of_its_group(
        engine: Engine, clock: Clock) -> None:
    engine.write(Op.PUT, b"k", b"5")
    past = clock.now - 1
    result = ok(engine, Txn(then=(Expire(b"k", past), Fetch(b"k"), Add(b"k", 1))))
    assert result.results == (True, None, 1)
    assert engine.get(b"k") == b"1" and engine.deadline(b"k") is None
    result = ok(engine, Txn(then=(Store(b"j", b"5", deadline=past), Fetch(b"j"))))
    assert result.results == (None, None) and engine.get(b"j") is None
