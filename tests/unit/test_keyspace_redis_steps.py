"""The steps the Redis front end needs, against the engine on the in-memory filesystem:
independent (EXEC) and nested transactions, Inspect, AddFloat, SetRange, Rename, Flush,
Expire's NX/XX/GT/LT, and deadlines already past deleting the key."""

from __future__ import annotations

from fractions import Fraction

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
    Op,
    Outcome,
    Remove,
    Store,
    Txn,
    TxnResult,
    Unwatch,
    Watch,
    check_operation,
)
from storage.ops import (
    NO_SUCH_KEY,
    NOT_A_FLOAT,
    NOT_AN_INTEGER,
    NOT_FINITE,
    OPERATION_MAX_STEPS,
    TOO_LONG,
    AddFloat,
    Flush,
    Inspect,
    Rename,
    SetRange,
    StepFailure,
    When,
    format_long_double,
    long_double,
    parse_long_double,
)
from storage.testing.memfs import MemFileSystem
from tests.unit.test_keyspace_ops import (  # the fixtures too: one engine set-up
    ROOT,
    GatedSink,
    engine,
    fs,
    one_group,
)

NOW = 1_700_000_000_000


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.keyspace, "wall_clock_ms", lambda: NOW)


def run(engine: Engine, *steps: object, independent: bool = False,
        compare: tuple[Compare, ...] = ()) -> TxnResult:
    outcome, result = engine.transact(Txn(compare, tuple(steps),  # type: ignore[arg-type]
                                          independent=independent))
    assert outcome is Outcome.OK and result is not None
    return result


def reopened(engine: Engine, fs: MemFileSystem) -> Engine:
    engine.options = EngineOptions(checkpoint_bytes=0, checkpoint_on_close=False)
    engine.close()
    return Engine.open(ROOT, EngineOptions(checkpoint_bytes=0), fs=fs)


# -- independent and nested transactions ------------------------------------------------
def test_an_independent_transaction_keeps_going_past_a_failed_step(
        engine: Engine, fs: MemFileSystem) -> None:
    run(engine, Store(b"s", b"text"))
    result = run(engine, Store(b"a", b"1"), Add(b"s", 1), Add(b"a", 1), independent=True)
    assert result.succeeded and result.error is None
    assert result.results == (None, StepFailure(NOT_AN_INTEGER), 2)
    reopen = reopened(engine, fs)
    try:
        assert (reopen.get(b"a"), reopen.get(b"s")) == (b"2", b"text")
    finally:
        reopen.close()


def test_a_dependent_transaction_still_applies_nothing_on_a_failed_step(engine: Engine) -> None:
    run(engine, Store(b"s", b"text"))
    result = run(engine, Store(b"a", b"1"), Add(b"s", 1))
    assert not result.succeeded and result.error == NOT_AN_INTEGER and result.error_step == 1
    assert engine.get(b"a") is None


def test_a_nested_transaction_decides_its_own_conditions(engine: Engine) -> None:
    run(engine, Store(b"taken", b"x"))
    setnx_taken = Txn((Compare(b"taken", Check.ABSENT),), (Store(b"taken", b"y"),))
    setnx_free = Txn((Compare(b"free", Check.ABSENT),), (Store(b"free", b"y"),))
    result = run(engine, setnx_taken, setnx_free, Fetch(b"free"), independent=True)
    first, second, fetched = result.results
    assert isinstance(first, TxnResult) and not first.succeeded and first.failed == 0
    assert isinstance(second, TxnResult) and second.succeeded
    assert fetched == b"y"
    assert engine.get(b"taken") == b"x"


def test_a_failed_step_inside_a_nested_transaction_undoes_only_that_transaction(
        engine: Engine) -> None:
    run(engine, Store(b"s", b"text"))
    inner = Txn((), (Store(b"b", b"1"), Add(b"s", 1)))
    result = run(engine, Store(b"a", b"1"), inner, Store(b"c", b"1"), independent=True)
    assert isinstance(result.results[1], TxnResult) and result.results[1].error == NOT_AN_INTEGER
    assert (engine.get(b"a"), engine.get(b"b"), engine.get(b"c")) == (b"1", None, b"1")


def test_transactions_nest_one_level_only() -> None:
    deep = Txn((), (Txn((), (Txn((), (Fetch(b"k"),)),)),))
    with pytest.raises(InvalidOperationError):
        check_operation(deep)
    check_operation(Txn((), (Txn((), (Fetch(b"k"),)),)))


def test_nested_steps_count_towards_the_size_cap() -> None:
    inner = Txn((), tuple(Fetch(b"k") for _ in range(OPERATION_MAX_STEPS // 2 + 1)))
    with pytest.raises(InvalidOperationError):
        check_operation(Txn((), (inner, inner)))


# -- Inspect, Rename, Flush -------------------------------------------------------------
def test_inspect_reads_value_and_deadline(engine: Engine) -> None:
    run(engine, Store(b"k", b"v", deadline=NOW + 5000), Store(b"p", b"w"))
    assert run(engine, Inspect(b"k"), Inspect(b"p"), Inspect(b"none")).results == (
        (b"v", NOW + 5000), (b"w", None), None)


def test_rename_moves_value_and_deadline(engine: Engine, fs: MemFileSystem) -> None:
    run(engine, Store(b"src", b"v", deadline=NOW + 5000), Store(b"dst", b"old"))
    assert run(engine, Rename(b"src", b"dst")).results == (True,)
    assert (engine.get(b"src"), engine.get(b"dst"), engine.deadline(b"dst")) == (
        None, b"v", NOW + 5000)
    reopen = reopened(engine, fs)
    try:
        assert (reopen.get(b"src"), reopen.get(b"dst")) == (None, b"v")
    finally:
        reopen.close()


def test_rename_nx_refuses_an_existing_target_and_missing_sources_fail(engine: Engine) -> None:
    run(engine, Store(b"a", b"1"), Store(b"b", b"2"))
    assert run(engine, Rename(b"a", b"b", nx=True)).results == (False,)
    assert run(engine, Rename(b"a", b"a", nx=True)).results == (False,)
    assert run(engine, Rename(b"a", b"a")).results == (True,)
    assert run(engine, Rename(b"none", b"x")).error == NO_SUCH_KEY
    assert (engine.get(b"a"), engine.get(b"b")) == (b"1", b"2")


def test_flush_inside_a_transaction_then_later_steps_see_an_empty_keyspace(
        engine: Engine) -> None:
    run(engine, Store(b"a", b"1"))
    assert run(engine, Flush(), Fetch(b"a"), Store(b"b", b"2")).results == (True, None, None)
    assert (engine.get(b"a"), engine.get(b"b")) == (None, b"2")


# -- SetRange and Append limits ---------------------------------------------------------
def test_set_range_pads_with_zero_bytes_and_keeps_the_deadline(engine: Engine) -> None:
    run(engine, Store(b"k", b"Hello World", deadline=NOW + 9000))
    assert run(engine, SetRange(b"k", 6, b"Redis", 1 << 20)).results == (11,)
    assert engine.get(b"k") == b"Hello Redis"
    assert run(engine, SetRange(b"new", 3, b"ab", 1 << 20)).results == (5,)
    assert engine.get(b"new") == b"\0\0\0ab"
    assert engine.deadline(b"k") == NOW + 9000


def test_set_range_with_nothing_to_write_writes_nothing(engine: Engine) -> None:
    assert run(engine, SetRange(b"absent", 10, b"", 100)).results == (0,)
    assert engine.get(b"absent") is None
    run(engine, Store(b"k", b"abc"))
    assert run(engine, SetRange(b"k", 10, b"", 100)).results == (3,)


def test_set_range_and_append_refuse_to_grow_past_the_limit(engine: Engine) -> None:
    assert run(engine, SetRange(b"k", 99, b"ab", 100)).error == TOO_LONG
    run(engine, Store(b"k", b"x" * 99))
    assert run(engine, Append(b"k", b"ab", limit=100)).error == TOO_LONG
    assert run(engine, Append(b"k", b"a", limit=100)).results == (100,)


# -- AddFloat: Redis's INCRBYFLOAT ------------------------------------------------------
@pytest.mark.parametrize(("start", "delta", "expected"), [
    (None, b"1.5", b"1.5"),
    (b"10.50", b"0.1", b"10.6"),
    (b"10.6", b"-5", b"5.6"),
    (b"5.0e3", b"2.0e2", b"5200"),
    (b"3", b"-3", b"0"),
    (b"0.1", b"0.2", b"0.3"),
    (b"1", b"1e-17", b"1.00000000000000001"),
    (b"-0.5", b"0.5", b"0"),
    (b"123456789012345678", b"1", b"123456789012345679"),
])
def test_add_float_prints_like_redis(engine: Engine, start: bytes | None, delta: bytes,
                                     expected: bytes) -> None:
    if start is not None:
        run(engine, Store(b"f", start))
    assert run(engine, AddFloat(b"f", delta)).results == (expected,)
    assert engine.get(b"f") == expected


@pytest.mark.parametrize(("start", "delta", "error"), [
    (b"abc", b"1", NOT_A_FLOAT),
    (b"1", b"abc", NOT_A_FLOAT),
    (b"1", b" 1", NOT_A_FLOAT),
    (b"1", b"nan", NOT_A_FLOAT),
    (b"1", b"inf", NOT_FINITE),
    (b"1", b"1e5000", NOT_A_FLOAT),
])
def test_add_float_errors(engine: Engine, start: bytes, delta: bytes, error: str) -> None:
    run(engine, Store(b"f", start))
    assert run(engine, AddFloat(b"f", delta)).error == error
    assert engine.get(b"f") == start


def test_long_double_rounding_is_to_64_bits_ties_to_even() -> None:
    assert long_double(Fraction(1)) == 1
    one_ulp = Fraction(1, 2 ** 63)
    assert long_double(1 + one_ulp / 2) == 1  # a tie rounds to even
    assert long_double(1 + one_ulp * 3 / 2) == 1 + 2 * one_ulp
    assert format_long_double(parse_long_double(b"0.1")) == b"0.1"


# -- Expire conditions and deadlines already past ---------------------------------------
@pytest.mark.parametrize(("current", "when", "new", "applies"), [
    (None, When.NX, NOW + 10, True), (NOW + 5, When.NX, NOW + 10, False),
    (None, When.XX, NOW + 10, False), (NOW + 5, When.XX, NOW + 10, True),
    (None, When.GT, NOW + 10, False), (NOW + 5, When.GT, NOW + 10, True),
    (NOW + 50, When.GT, NOW + 10, False),
    (None, When.LT, NOW + 10, True), (NOW + 5, When.LT, NOW + 10, False),
    (NOW + 50, When.LT, NOW + 10, True),
    (None, When.XX, None, False), (NOW + 5, When.XX, None, True),
])
def test_expire_conditions(engine: Engine, current: int | None, when: When, new: int | None,
                           applies: bool) -> None:
    run(engine, Store(b"k", b"v", deadline=current))
    assert run(engine, Expire(b"k", new, when)).results == (applies,)
    assert engine.deadline(b"k") == (new if applies else current)


def test_an_expiry_already_past_deletes_the_key(engine: Engine, fs: MemFileSystem) -> None:
    run(engine, Store(b"a", b"1"), Store(b"b", b"2"))
    assert run(engine, Expire(b"a", NOW - 1), Expire(b"b", NOW)).results == (True, True)
    assert b"a" not in engine.table and b"b" not in engine.table
    run(engine, Store(b"c", b"x", deadline=1))  # stored already expired: invisible
    assert engine.get(b"c") is None
    reopen = reopened(engine, fs)
    try:
        assert reopen.get(b"a") is None and reopen.get(b"c") is None
        assert b"a" not in reopen.table
    finally:
        reopen.close()


# -- WATCH: touched keys, in commit order -------------------------------------------------
def exec_watched(engine: Engine, watcher: int, *steps: object) -> TxnResult:
    """An EXEC of ``steps`` for ``watcher``: runs only if none of its keys was touched."""
    unwatch = (Unwatch(watcher),)
    outcome, result = engine.transact(Txn((Compare(b"", Check.UNTOUCHED, b"%d" % watcher),),
                                          tuple(steps) + unwatch, unwatch,  # type: ignore
                                          independent=True))
    assert outcome is Outcome.OK and result is not None
    return result


@pytest.mark.parametrize("touch", [
    Store(b"w", b"same"), Store(b"w", b"other"), Append(b"w", b""), Remove(b"w"),
    Expire(b"w", NOW + 1000), Flush(),
])
def test_any_write_to_a_watched_key_breaks_the_watch(engine: Engine, touch: object) -> None:
    run(engine, Store(b"w", b"same"))
    run(engine, Watch(b"w", 7))
    run(engine, touch)
    assert not exec_watched(engine, 7, Store(b"x", b"1")).succeeded
    assert engine.get(b"x") is None
    assert engine.keyspace.watchers == {} and engine.keyspace.dirty == set()


@pytest.mark.parametrize("untouched", [
    Store(b"other", b"v"), Remove(b"absent"), Expire(b"w", None, When.XX), Fetch(b"w"),
])
def test_writes_that_do_not_change_a_watched_key_leave_the_watch(engine: Engine,
                                                                 untouched: object) -> None:
    run(engine, Store(b"w", b"v"))
    run(engine, Watch(b"w", 7), Watch(b"absent", 7))
    run(engine, untouched)
    assert exec_watched(engine, 7, Store(b"x", b"1")).succeeded
    assert engine.get(b"x") == b"1"


def test_a_flush_touches_only_watched_keys_that_existed(engine: Engine) -> None:
    run(engine, Watch(b"never", 1))
    run(engine, Flush())
    assert exec_watched(engine, 1, Store(b"x", b"1")).succeeded


def exec_with_sink(engine: Engine, sink: GatedSink, watcher: int) -> TxnResult:
    """``exec_watched`` on an engine whose answers go to ``sink`` (see ``one_group``)."""
    unwatch = (Unwatch(watcher),)
    txn = Txn((Compare(b"", Check.UNTOUCHED, b"%d" % watcher),),
              (Store(b"x", b"1"), *unwatch), unwatch, independent=True)
    sink.done.clear()
    sink.expect = len(sink.outcomes) + 1
    engine.submit_batch([(Op.EVALUATE, b"", txn, "exec")])
    assert sink.done.wait(10)
    result = sink.results["exec"]
    assert isinstance(result, TxnResult)
    return result


def test_a_write_before_the_watch_in_the_same_group_does_not_count(fs: MemFileSystem) -> None:
    engine, _sink = one_group(fs, [(Op.PUT, b"w", b"1"),
                                  (Op.EVALUATE, b"", Txn((), (Watch(b"w", 3),))),
                                  (Op.PUT, b"other", b"2")])
    try:
        assert engine.keyspace.dirty == set()
        assert exec_with_sink(engine, _sink, 3).succeeded
    finally:
        engine.close()


def test_a_write_after_the_watch_in_the_same_group_counts(fs: MemFileSystem) -> None:
    engine, _sink = one_group(fs, [(Op.EVALUATE, b"", Txn((), (Watch(b"w", 3),))),
                                  (Op.PUT, b"w", b"1")])
    try:
        assert not exec_with_sink(engine, _sink, 3).succeeded
    finally:
        engine.close()


def test_a_failed_step_does_not_touch(engine: Engine) -> None:
    run(engine, Store(b"text", b"abc"), Watch(b"w", 5))
    run(engine, Store(b"w", b"1"), Add(b"text", 1))  # fails whole: nothing applied
    assert engine.get(b"w") is None
    assert exec_watched(engine, 5, Store(b"x", b"1")).succeeded


@pytest.mark.parametrize("operand", [b"", b"x", b"-1", b"1" * 20])
def test_an_untouched_condition_needs_a_watcher_id(operand: bytes) -> None:
    with pytest.raises(InvalidOperationError):
        check_operation(Txn((Compare(b"", Check.UNTOUCHED, operand),)))


__all__ = ["engine", "fs"]  # fixtures, used by name
