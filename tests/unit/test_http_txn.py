"""``POST /txn``: the JSON body to a ``Txn`` (or the 400/413 that refuses it) and a
result to its JSON answer, fed whole; every transaction parsed is one the engine
accepts."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.http import txn
from server.http.replies import Evaluation, Reply
from storage import (
    TXN_MAX_STEPS,
    Add,
    Check,
    Compare,
    Fetch,
    Remove,
    Store,
    Txn,
    TxnResult,
    etag,
)
from storage.ops import check_operation

NOW = 1_700_000_000_000
TAG = etag(b"v")


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def parsed(document: object) -> Txn:
    return txn.parse(body(document), NOW)


def refused(raw: bytes) -> Reply:
    planned = txn.plan(raw, NOW)
    assert isinstance(planned, Reply), planned
    return planned


# -- parsing ------------------------------------------------------------------------------


def test_the_spec_example_parses_to_conditions_and_steps() -> None:
    document = {
        "compare": [{"key": "a", "absent": True}, {"key": "b", "present": True},
                    {"key": "c", "etag": TAG}, {"key": "d", "value": "v"},
                    {"key": "e", "etag": f'"{TAG}"'}],
        "ops": [{"op": "put", "key": "k", "value": "v", "ttl": 30},
                {"op": "delete", "key": "k"}, {"op": "incr", "key": "n", "by": -2},
                {"op": "incr", "key": "n"}, {"op": "get", "key": "k"},
                {"op": "put", "key": "p", "value": "w"}],
    }
    assert parsed(document) == Txn(
        (Compare(b"a", Check.ABSENT), Compare(b"b", Check.PRESENT),
         Compare(b"c", Check.ETAG, TAG.encode()), Compare(b"d", Check.VALUE, b"v"),
         Compare(b"e", Check.ETAG, TAG.encode())),
        (Store(b"k", b"v", NOW + 30_000), Remove(b"k"), Add(b"n", -2), Add(b"n", 1),
         Fetch(b"k"), Store(b"p", b"w")))


def test_keys_and_values_may_be_base64_anywhere() -> None:
    b64 = base64.b64encode(b"\xff\x00").decode()
    document = {"compare": [{"key_b64": b64, "value_b64": b64}],
                "ops": [{"op": "put", "key_b64": b64, "value_b64": b64},
                        {"op": "get", "key": "é"}]}
    assert parsed(document) == Txn((Compare(b"\xff\x00", Check.VALUE, b"\xff\x00"),),
                                   (Store(b"\xff\x00", b"\xff\x00"), Fetch("é".encode())))


@pytest.mark.parametrize("document", [{}, {"compare": []}, {"ops": []}])
def test_an_empty_transaction_is_valid(document: dict[str, Any]) -> None:
    assert parsed(document) == Txn()


def test_a_fractional_ttl_rounds_up_to_a_millisecond() -> None:
    assert parsed({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 0.0001}]}) == Txn(
        (), (Store(b"k", b"v", NOW + 1),))


BAD = {
    "not_json": (b"{", "not JSON"),
    "not_utf8": (b'{"ops": "\xff"}', "not JSON"),
    "nan": (b'{"ops": [{"op": "incr", "key": "k", "by": NaN}]}', "NaN is not a number"),
    "duplicate_member": (b'{"ops": [], "ops": []}', "a member is given twice"),
    "deep": (b"[" * 100_000, "nested too deeply"),
    "not_an_object": (body([]), "the body is not a JSON object"),
    "unknown_top": (body({"ops": [], "success": []}), "unknown member 'success'"),
    "ops_not_list": (body({"ops": {}}), "ops: not a list"),
    "op_not_object": (body({"ops": [1]}), r"ops\[0\]: not an object"),
    "unknown_op": (body({"ops": [{"op": "cas", "key": "k"}]}), r"ops\[0\]\.op: must be one"),
    "missing_op": (body({"ops": [{"key": "k"}]}), r"ops\[0\]\.op"),
    "unknown_field": (body({"ops": [{"op": "get", "key": "k", "value": "v"}]}),
                      r"ops\[0\]: unknown member 'value'"),
    "missing_key": (body({"ops": [{"op": "get"}]}), "key missing or empty"),
    "empty_key": (body({"ops": [{"op": "delete", "key": ""}]}), "key missing or empty"),
    "key_not_string": (body({"ops": [{"op": "get", "key": 5}]}), r"ops\[0\]\.key: not a string"),
    "lone_surrogate": (b'{"ops": [{"op": "get", "key": "\\ud800"}]}', "not UTF-8"),
    "key_and_key_b64": (body({"ops": [{"op": "get", "key": "a", "key_b64": "YQ=="}]}),
                        "key and key_b64 both given"),
    "bad_base64": (body({"ops": [{"op": "get", "key_b64": "!!"}]}), "not base64"),
    "base64_unpadded": (body({"ops": [{"op": "get", "key_b64": "YQ"}]}), "not base64"),
    "base64_overpadded": (body({"ops": [{"op": "get", "key_b64": "YWJj="}]}), "not base64"),
    "base64_not_ascii": (body({"ops": [{"op": "get", "key_b64": "YWJ\u0663"}]}), "not base64"),
    "empty_value": (body({"ops": [{"op": "put", "key": "k", "value": ""}]}),
                    "value missing or empty"),
    "missing_value": (body({"ops": [{"op": "put", "key": "k"}]}), "value missing or empty"),
    "bad_ttl": (body({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": 0}]}),
                r"ops\[0\]\.ttl: must be a number of seconds"),
    "ttl_bool": (body({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": True}]}),
                 r"\.ttl"),
    "ttl_string": (body({"ops": [{"op": "put", "key": "k", "value": "v", "ttl": "5"}]}),
                   r"\.ttl"),
    "by_float": (body({"ops": [{"op": "incr", "key": "k", "by": 1.5}]}),
                 r"ops\[0\]\.by: must be a 64-bit integer"),
    "by_bool": (body({"ops": [{"op": "incr", "key": "k", "by": True}]}), "64-bit integer"),
    "by_too_big": (body({"ops": [{"op": "incr", "key": "k", "by": 1 << 63}]}), "64-bit"),
    "no_check": (body({"compare": [{"key": "k"}]}), r"compare\[0\]: needs exactly one"),
    "two_checks": (body({"compare": [{"key": "k", "absent": True, "present": True}]}),
                   "needs exactly one"),
    "value_and_value_b64": (body({"compare": [{"key": "k", "value": "a", "value_b64": "YQ=="}]}),
                            "needs exactly one"),
    "absent_false": (body({"compare": [{"key": "k", "absent": False}]}),
                     r"compare\[0\]\.absent: must be true"),
    "etag_not_string": (body({"compare": [{"key": "k", "etag": 1}]}), "etag: not an ASCII"),
    "etag_not_ascii": (body({"compare": [{"key": "k", "etag": "é"}]}), "etag: not an ASCII"),
}


@pytest.mark.parametrize(("raw", "reason"), BAD.values(), ids=BAD.keys())
def test_a_malformed_transaction_is_400_saying_where(raw: bytes, reason: str) -> None:
    reply = refused(raw)
    assert reply.status == 400 and reply.content_type == b"text/plain; charset=utf-8"
    text = reply.body.decode()
    assert text.startswith("invalid transaction: ") and text.endswith("\n")
    assert re.search(reason, text), text


@pytest.mark.parametrize("split", [0, 1, TXN_MAX_STEPS])
def test_more_than_the_limit_of_conditions_and_ops_is_413(split: int) -> None:
    document = {"compare": [{"key": "k", "present": True}] * split,
                "ops": [{"op": "get", "key": "k"}] * (TXN_MAX_STEPS + 1 - split)}
    assert refused(body(document)) == Reply(
        413, b"transaction too large: at most 128 conditions and operations\n")


def test_exactly_the_limit_is_a_transaction() -> None:
    document = {"compare": [{"key": "k", "present": True}] * 28,
                "ops": [{"op": "get", "key": "k"}] * 100}
    assert parsed(document).size() == TXN_MAX_STEPS


KEYS = st.text(min_size=1, max_size=5)
COMPARES = st.one_of(
    st.fixed_dictionaries({"key": KEYS, "absent": st.just(True)}),
    st.fixed_dictionaries({"key": KEYS, "etag": st.text(max_size=40)}),
    st.fixed_dictionaries({"key": KEYS, "value": st.text()}))
OPS = st.one_of(
    st.fixed_dictionaries({"op": st.just("put"), "key": KEYS, "value": st.text(min_size=1)},
                          optional={"ttl": st.floats() | st.integers()}),
    st.fixed_dictionaries({"op": st.sampled_from(["get", "delete"]), "key": KEYS}),
    st.fixed_dictionaries({"op": st.just("incr"), "key": KEYS},
                          optional={"by": st.integers()}))


@given(compares=st.lists(COMPARES, max_size=70), ops=st.lists(OPS, max_size=70))
def test_every_transaction_parsed_is_one_the_engine_accepts(
        compares: list[Any], ops: list[Any]) -> None:
    planned = txn.plan(body({"compare": compares, "ops": ops}), NOW)
    if isinstance(planned, Evaluation):
        check_operation(planned.operation)
    else:
        assert planned.status in (400, 413)


# -- the answer ---------------------------------------------------------------------------


def answer(txn_: Txn, result: TxnResult) -> tuple[int, Any]:
    reply = txn.render(txn_, result)
    assert reply.content_type == b"application/json" and reply.body.endswith(b"\n")
    return reply.status, json.loads(reply.body)


def test_a_transaction_that_ran_lists_one_result_per_op() -> None:
    steps = (Store(b"k", b"v"), Remove(b"k"), Remove(b"x"), Add(b"n", 1), Fetch(b"k"),
             Fetch(b"b"), Fetch(b"none"))
    result = TxnResult(True, (None, True, False, 6, b"v", b"\xff", None))
    assert answer(Txn((), steps), result) == (200, {"succeeded": True, "results": [
        {"op": "put"}, {"op": "delete", "deleted": True}, {"op": "delete", "deleted": False},
        {"op": "incr", "value": 6}, {"op": "get", "found": True, "value": "v"},
        {"op": "get", "found": True, "value_b64": "/w=="}, {"op": "get", "found": False}]})


def test_a_failed_condition_is_412_naming_it() -> None:
    t = Txn((Compare(b"a", Check.PRESENT), Compare(b"\xfe", Check.ABSENT)), (Remove(b"a"),))
    assert answer(t, TxnResult(False, (), failed=1)) == (
        412, {"succeeded": False, "failed": {"index": 1, "key_b64": "/g=="}})


def test_a_step_that_could_not_run_is_409_naming_it() -> None:
    t = Txn((), (Store(b"a", b"1"), Add(b"s", 1)))
    result = TxnResult(False, error="value is not an integer or out of range", error_step=1)
    assert answer(t, result) == (409, {"error": "value is not an integer or out of range",
                                       "index": 1})
