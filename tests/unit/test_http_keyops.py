"""`/kv/{key}` with a query or preconditions: what each request becomes (a reply, a plain
write, a judged read, or a transaction and how its result is answered), and the query
and time-to-live rules, each fed whole."""

from __future__ import annotations

import pytest

from server.commands import Delete, Put
from server.http import keyops
from server.http.codec import Conditions
from server.http.query import TTL_MAX_SECONDS, QueryError, parameters, ttl_ms_of_text
from server.http.replies import (
    PRECONDITION_FAILED,
    PROCEED,
    ConditionalRead,
    Evaluation,
    Reply,
    entity_tag,
)
from storage import Check, Compare, Remove, Store, Txn, TxnResult, etag

NOW = 1_700_000_000_000
TAG = etag(b"old").encode()
QUOTED = b'"' + TAG + b'"'


def plan(method: bytes, query: bytes = b"", if_match: bytes | None = None,
         if_none_match: bytes | None = None, body: bytes = b"new") -> keyops.Plan:
    conditions = None if if_match is None and if_none_match is None else Conditions(
        if_match, if_none_match)
    return keyops.plan(method, b"k", query, conditions, body, NOW)


def evaluation(plan: keyops.Plan) -> Evaluation:
    assert isinstance(plan, Evaluation), plan
    return plan


STORED = Reply(200, b"", None, ((b"ETag", b'"' + entity_tag(b"new") + b'"'),))


# -- what each request becomes -----------------------------------------------------------


def test_put_with_ttl_stores_with_a_deadline_and_answers_the_etag() -> None:
    planned = evaluation(plan(b"PUT", b"ttl=1.5"))
    assert planned.operation == Txn((), (Store(b"k", b"new", NOW + 1500),))
    assert planned.render(TxnResult(True, (None,))) == STORED


@pytest.mark.parametrize("query", [b"x=1", b"ttl2=3", b"", b"&&"])
def test_put_with_no_ttl_in_its_query_is_a_plain_put(query: bytes) -> None:
    assert plan(b"PUT", query) == Put(b"k", b"new")


@pytest.mark.parametrize(("query", "reason"), [
    (b"ttl=0", b"invalid ttl\n"), (b"ttl=abc", b"invalid ttl\n"), (b"ttl=", b"invalid ttl\n"),
    (b"ttl", b"invalid ttl\n"), (b"ttl=1&ttl=2", b"invalid ttl\n")])
def test_a_bad_ttl_is_400_saying_so(query: bytes, reason: bytes) -> None:
    assert plan(b"PUT", query) == Reply(400, reason)


def test_put_if_match_is_a_compare_and_set() -> None:
    planned = evaluation(plan(b"PUT", if_match=QUOTED))
    assert planned.operation == Txn((Compare(b"k", Check.ETAG, TAG),), (Store(b"k", b"new"),))
    assert planned.render(TxnResult(True, (b"old",))) == STORED
    assert planned.render(TxnResult(False, (), failed=0)) == PRECONDITION_FAILED


def test_put_if_match_with_a_ttl_keeps_both() -> None:
    planned = evaluation(plan(b"PUT", b"ttl=2", if_match=b"*"))
    assert planned.operation == Txn((Compare(b"k", Check.PRESENT),),
                                    (Store(b"k", b"new", NOW + 2000),))


def test_put_if_none_match_star_creates_only() -> None:
    planned = evaluation(plan(b"PUT", if_none_match=b"*"))
    assert planned.operation == Txn((Compare(b"k", Check.ABSENT),), (Store(b"k", b"new"),))
    assert planned.render(TxnResult(False, (), failed=0)) == PRECONDITION_FAILED


def test_put_if_none_match_a_tag_stores_only_when_the_compare_fails() -> None:
    planned = evaluation(plan(b"PUT", if_none_match=QUOTED))
    assert planned.operation == Txn((Compare(b"k", Check.ETAG, TAG),), (),
                                    (Store(b"k", b"new"),))
    assert planned.render(TxnResult(True, ())) == PRECONDITION_FAILED
    assert planned.render(TxnResult(False, (b"x",), failed=0)) == STORED


def test_delete_if_match_removes_under_the_condition_without_an_etag() -> None:
    planned = evaluation(plan(b"DELETE", if_match=QUOTED))
    assert planned.operation == Txn((Compare(b"k", Check.ETAG, TAG),), (Remove(b"k"),))
    assert planned.render(TxnResult(True, (True,))) == Reply(200, b"", None)
    assert planned.render(TxnResult(False, (), failed=0)) == PRECONDITION_FAILED


def test_delete_ignores_a_ttl() -> None:
    planned = evaluation(plan(b"DELETE", b"ttl=5", if_match=b"*"))
    assert planned.operation == Txn((Compare(b"k", Check.PRESENT),), (Remove(b"k"),))


def test_a_condition_that_cannot_hold_is_412_without_a_transaction() -> None:
    assert plan(b"PUT", if_match=b'W/"' + TAG + b'"') == PRECONDITION_FAILED
    assert plan(b"DELETE", if_match=b"*", if_none_match=b"*") == PRECONDITION_FAILED


def test_a_condition_that_always_holds_leaves_a_plain_write() -> None:
    assert plan(b"PUT", if_none_match=b'"not-a-walkv-tag"') == Put(b"k", b"new")
    assert plan(b"DELETE", if_none_match=b'"x"') == Delete(b"k")


def test_get_with_preconditions_is_a_judged_read() -> None:
    planned = plan(b"GET", if_none_match=QUOTED)
    assert isinstance(planned, ConditionalRead) and planned.key == b"k"
    assert (planned.judge(TAG), planned.judge(None)) == (304, PROCEED)


@pytest.mark.parametrize(("if_match", "if_none_match", "body"), [
    (b"nope", None, b"invalid If-Match\n"),
    (None, b'"a', b"invalid If-None-Match\n"),
    (b'"' + TAG + b'", "' + etag(b"x").encode() + b'"', None,
     b"precondition not supported: more than one entity tag that could match\n"),
])
def test_bad_preconditions_are_400_saying_why(if_match: bytes | None,
                                              if_none_match: bytes | None,
                                              body: bytes) -> None:
    for method in (b"GET", b"PUT", b"DELETE"):
        if method == b"GET" and b"more than one" in body:
            continue  # a read can judge any list
        assert plan(method, if_match=if_match, if_none_match=if_none_match) == Reply(400, body)


# -- the query and the time to live -------------------------------------------------------


@pytest.mark.parametrize(("query", "found"), [
    (b"a=1&b=2", {b"a": b"1"}),
    (b"a=x%2By+z&c", {b"a": b"x+y z"}),
    (b"%61=%FF%00", {b"a": b"\xff\x00"}),
    (b"b=1&a=", {b"a": b""}),
    (b"a=1=2", {b"a": b"1=2"}),
])
def test_parameters_are_decoded_and_unknown_ones_ignored(query: bytes,
                                                         found: dict[bytes, bytes]) -> None:
    assert parameters(query, frozenset({b"a"})) == found


@pytest.mark.parametrize(("text", "ms"), [
    (b"30", 30_000), (b"0.2", 200), (b"1.", 1000), (b".5", 500), (b"0.0001", 1),
    (b"1.0005", 1001), (b"1e3", 1_000_000), (b"2.5E-1", 250), (b"1e-300", 1),
    (str(TTL_MAX_SECONDS).encode(), TTL_MAX_SECONDS * 1000)])
def test_a_ttl_is_decimal_seconds_rounded_up_to_a_millisecond(text: bytes, ms: int) -> None:
    assert ttl_ms_of_text(text) == ms


@pytest.mark.parametrize("text", [
    b"0", b"0.0", b"0e5", b"-1", b"+1", b"1e", b"e3", b"nan", b"inf", b"", b" 1", b"1 ",
    b"0x10", b"1e999999", str(TTL_MAX_SECONDS + 1).encode(), b"315360000.001", b"\xd9\xa1"])
def test_a_ttl_outside_its_range_or_form_is_refused(text: bytes) -> None:
    with pytest.raises(QueryError, match=r"^invalid ttl$"):
        ttl_ms_of_text(text)
