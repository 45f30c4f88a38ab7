"""The router: every row of CONTRACT.md section 2 that needs no storage."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.commands import Clear, Delete, Get, Introspect, Put, Report
from server.http.codec import Conditions, Request, RequestParser
from server.http.replies import (
    CLEAR_METHOD_NOT_ALLOWED,
    INTROSPECT_METHOD_NOT_ALLOWED,
    KEY_EMPTY,
    KV_METHOD_NOT_ALLOWED,
    LIST_METHOD_NOT_ALLOWED,
    NOT_FOUND,
    TXN_METHOD_NOT_ALLOWED,
    VALUE_EMPTY,
    Reply,
)
from server.http.router import Extended, Route, route

OTHER_METHODS = [b"POST", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE"]


def req(method: bytes, target: bytes, body: bytes = b"",
        conditions: Conditions | None = None) -> Request:
    return Request(method, target, body, True, conditions)


IF_MATCH = Conditions(if_match=b'"abc"')


# -- /kv/{key} ----------------------------------------------------------------------


def test_get_key_is_a_get() -> None:
    assert route(req(b"GET", b"/kv/alpha")) == Get(b"alpha")


def test_put_key_is_a_put_with_the_body() -> None:
    assert route(req(b"PUT", b"/kv/alpha", b"\x00value\xff")) == Put(b"alpha", b"\x00value\xff")


def test_delete_key_is_a_delete() -> None:
    assert route(req(b"DELETE", b"/kv/alpha")) == Delete(b"alpha")


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"DELETE"])
def test_empty_key_is_rejected(method: bytes) -> None:
    assert route(req(method, b"/kv/", b"v")) == KEY_EMPTY


@pytest.mark.parametrize("target", [b"/kv/?x=1", b"/kv/#frag", b"http://h/kv/"])
def test_key_that_is_empty_after_the_query_is_cut_is_rejected(target: bytes) -> None:
    assert route(req(b"GET", target)) == KEY_EMPTY


def test_put_with_empty_body_is_rejected() -> None:
    assert route(req(b"PUT", b"/kv/alpha", b"")) == VALUE_EMPTY


def test_put_with_empty_key_and_empty_body_reports_the_key_first() -> None:
    assert route(req(b"PUT", b"/kv/", b"")) == KEY_EMPTY


@pytest.mark.parametrize("method", OTHER_METHODS)
@pytest.mark.parametrize("target", [b"/kv/alpha", b"/kv/"])
def test_other_methods_on_a_key_are_not_allowed(method: bytes, target: bytes) -> None:
    assert route(req(method, target, b"v")) == KV_METHOD_NOT_ALLOWED


def test_body_of_get_and_delete_is_ignored() -> None:
    assert route(req(b"GET", b"/kv/a", b"zz")) == Get(b"a")
    assert route(req(b"DELETE", b"/kv/a", b"zz")) == Delete(b"a")


# -- keys ---------------------------------------------------------------------------

KEY_CASES = {
    "plain": (b"/kv/key", b"key"),
    "case_sensitive_upper": (b"/kv/Key", b"Key"),
    "punctuation": (b"/kv/a:b-c_d.e", b"a:b-c_d.e"),
    "slashes": (b"/kv/a/b/c", b"a/b/c"),
    "encoded_slash": (b"/kv/a%2Fb", b"a/b"),
    "encoded_space": (b"/kv/a%20b", b"a b"),
    "plus_is_literal": (b"/kv/a+b", b"a+b"),
    "utf8": (b"/kv/caf%C3%A9", "café".encode()),
    "binary": (b"/kv/%00%FF%fe", b"\x00\xff\xfe"),
    "encoded_percent": (b"/kv/100%25", b"100%"),
    "invalid_escape_kept": (b"/kv/%zz%4", b"%zz%4"),
    "encoded_question_mark": (b"/kv/a%3Fb", b"a?b"),
    "dot_segments_kept": (b"/kv/../clear", b"../clear"),
    "double_slash": (b"/kv//x", b"/x"),
    "query_ignored": (b"/kv/a?x=1&y=2", b"a"),
    "fragment_ignored": (b"/kv/a#top", b"a"),
    "fragment_before_question_mark": (b"/kv/a#b?c", b"a"),
    "absolute_form": (b"http://example.com:8080/kv/a%2Fb?q", b"a/b"),
}


@pytest.mark.parametrize(("target", "key"), KEY_CASES.values(), ids=KEY_CASES.keys())
def test_key_is_the_decoded_rest_of_the_path(target: bytes, key: bytes) -> None:
    assert route(req(b"GET", target)) == Get(key)


def test_keys_differing_only_in_case_are_different() -> None:
    assert route(req(b"GET", b"/kv/abc")) != route(req(b"GET", b"/kv/ABC"))


@given(key=st.binary(min_size=1, max_size=64))
def test_any_percent_encoded_key_round_trips(key: bytes) -> None:
    target = b"/kv/" + quote_from_bytes(key, safe="/:").encode("ascii")
    assert route(req(b"PUT", target, b"v")) == Put(key, b"v")


# -- /kv/{key} with a query or preconditions: handed to keyops -------------------------


@pytest.mark.parametrize(("target", "key", "query"), [
    (b"/kv/a?ttl=30", b"a", b"ttl=30"),
    (b"/kv/a%2Fb?ttl=0.5&x=1", b"a/b", b"ttl=0.5&x=1"),
    (b"/kv/a?ttl=1#frag", b"a", b"ttl=1"),
    (b"http://h:1/kv/a?ttl=2", b"a", b"ttl=2"),
])
def test_put_with_a_query_is_extended_with_the_decoded_key_and_raw_query(
        target: bytes, key: bytes, query: bytes) -> None:
    assert route(req(b"PUT", target, b"v")) == Extended(Route.KEY, key, query)


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"DELETE"])
@pytest.mark.parametrize("conditions", [IF_MATCH, Conditions(if_none_match=b"*")])
def test_preconditions_on_a_key_are_extended(method: bytes, conditions: Conditions) -> None:
    assert route(req(method, b"/kv/k?q", b"v", conditions)) == Extended(Route.KEY, b"k", b"q")


@pytest.mark.parametrize(("method", "command"), [(b"GET", Get(b"a")), (b"DELETE", Delete(b"a"))])
def test_a_query_without_preconditions_means_nothing_to_get_and_delete(
        method: bytes, command: object) -> None:
    assert route(req(method, b"/kv/a?ttl=30")) == command


def test_empty_key_and_value_are_refused_before_the_query_and_preconditions() -> None:
    assert route(req(b"PUT", b"/kv/?ttl=1", b"v", IF_MATCH)) == KEY_EMPTY
    assert route(req(b"PUT", b"/kv/a?ttl=1", b"", IF_MATCH)) == VALUE_EMPTY
    assert route(req(b"GET", b"/kv/", b"", IF_MATCH)) == KEY_EMPTY


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_preconditions_do_not_change_the_allowed_methods(method: bytes) -> None:
    assert route(req(method, b"/kv/a", b"v", IF_MATCH)) == KV_METHOD_NOT_ALLOWED


# -- /kv (the listing) and /txn ---------------------------------------------------------


@pytest.mark.parametrize(("target", "query"), [
    (b"/kv", b""), (b"/kv?prefix=a&limit=2", b"prefix=a&limit=2"),
    (b"/kv?cursor=x#frag", b"cursor=x"), (b"http://h/kv?values=true", b"values=true")])
def test_get_kv_without_a_slash_is_the_listing(target: bytes, query: bytes) -> None:
    assert route(req(b"GET", target)) == Extended(Route.LIST, b"", query)


@pytest.mark.parametrize("target", [b"/txn", b"/txn?x=1", b"http://h/txn"])
def test_post_txn_is_a_transaction(target: bytes) -> None:
    assert route(req(b"POST", target, b"{}")) == Extended(Route.TXN)


@pytest.mark.parametrize(("target", "method", "reply", "allow"), [
    (target, method, reply, allow)
    for target, allowed, reply, allow in [
        (b"/kv?prefix=a", b"GET", LIST_METHOD_NOT_ALLOWED, b"GET"),
        (b"/txn", b"POST", TXN_METHOD_NOT_ALLOWED, b"POST")]
    for method in [b"GET", b"PUT", b"DELETE", b"POST", b"PATCH", b"HEAD"] if method != allowed])
def test_other_methods_on_the_listing_and_txn_are_405(target: bytes, method: bytes,
                                                      reply: Reply, allow: bytes) -> None:
    routed = route(req(method, target, b"{}"))
    assert routed == reply
    assert isinstance(routed, Reply) and routed.headers == ((b"Allow", allow),)


# -- /clear -------------------------------------------------------------------------


@pytest.mark.parametrize("target", [b"/clear", b"/clear?all=1", b"http://h/clear"])
def test_delete_clear_clears(target: bytes) -> None:
    assert route(req(b"DELETE", target)) == Clear()


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"POST", b"PATCH", b"HEAD", b"OPTIONS"])
def test_other_methods_on_clear_are_not_allowed(method: bytes) -> None:
    assert route(req(method, b"/clear", b"v")) == CLEAR_METHOD_NOT_ALLOWED


# -- other paths --------------------------------------------------------------------

OTHER_PATHS = [
    b"/",
    b"/kvv",
    b"/kvx/a",
    b"/kv%2F",
    b"/txn/",
    b"/Txn",
    b"/KV/a",
    b"/%6Bv/a",
    b"/clear/",
    b"/clearall",
    b"/Clear",
    b"/healthz/",
    b"/Metrics",
    b"/stats/x",
    b"*",
    b"http://h",
]


@pytest.mark.parametrize("method", [b"GET", b"PUT", b"DELETE", b"POST"])
@pytest.mark.parametrize("target", OTHER_PATHS)
def test_any_other_path_is_not_found(method: bytes, target: bytes) -> None:
    assert route(req(method, target, b"v")) == NOT_FOUND


# -- introspection ------------------------------------------------------------------


INTROSPECTION_PATHS = {b"/metrics": Report.METRICS, b"/stats": Report.STATS,
                      b"/healthz": Report.HEALTH}


@pytest.mark.parametrize(("path", "report"), INTROSPECTION_PATHS.items())
@pytest.mark.parametrize("suffix", [b"", b"?format=x", b"#frag"])
def test_get_on_an_introspection_path_is_introspect(path: bytes, report: Report,
                                                    suffix: bytes) -> None:
    assert route(req(b"GET", path + suffix)) == Introspect(report)


@pytest.mark.parametrize("method", [b"PUT", b"DELETE", *OTHER_METHODS])
@pytest.mark.parametrize("path", INTROSPECTION_PATHS)
def test_other_methods_on_introspection_paths_are_405_allowing_get(
        path: bytes, method: bytes) -> None:
    reply = route(req(method, path, b"x"))
    assert reply == INTROSPECT_METHOD_NOT_ALLOWED
    assert isinstance(reply, Reply) and reply.status == 405
    assert dict(reply.headers) == {b"Allow": b"GET"}


# -- replies ------------------------------------------------------------------------

REPLY_CASES = {
    "key_empty": (KEY_EMPTY, 400, b"key cannot be empty\n", ()),
    "value_empty": (VALUE_EMPTY, 400, b"value cannot be empty\n", ()),
    "not_found": (NOT_FOUND, 404, b"not found\n", ()),
    "kv_method": (
        KV_METHOD_NOT_ALLOWED,
        405,
        b"method not allowed\n",
        ((b"Allow", b"GET, PUT, DELETE"),),
    ),
    "clear_method": (
        CLEAR_METHOD_NOT_ALLOWED,
        405,
        b"method not allowed\n",
        ((b"Allow", b"DELETE"),),
    ),
}


@pytest.mark.parametrize(
    ("reply", "status", "body", "headers"), REPLY_CASES.values(), ids=REPLY_CASES.keys()
)
def test_contract_replies_are_exact(
    reply: Reply, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> None:
    assert (reply.status, reply.body, reply.headers) == (status, body, headers)
    assert reply.content_type == b"text/plain; charset=utf-8"


def test_reply_encodes_to_exact_bytes() -> None:
    assert KV_METHOD_NOT_ALLOWED.encode(keep_alive=True) == (
        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 19\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nAllow: GET, PUT, DELETE\r\n\r\n"
        b"method not allowed\n"
    )
    assert KEY_EMPTY.encode(keep_alive=False) == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 20\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
        b"key cannot be empty\n"
    )


# -- from bytes to commands ---------------------------------------------------------


def routed(data: bytes) -> list[object]:
    p = RequestParser(max_header_bytes=8192, max_body_bytes=1024)
    return [route(e) if isinstance(e, Request) else e for e in p.feed(data)]


def test_wire_requests_route_to_commands_in_order() -> None:
    data = (
        b"PUT /kv/user%3A1 HTTP/1.1\r\nContent-Length: 3\r\n\r\n\x00\x01\x02"
        b"PUT /kv/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
        b"GET /kv/user%3A1 HTTP/1.1\r\n\r\n"
        b"DELETE /kv/c HTTP/1.1\r\n\r\n"
        b"PUT /kv/e HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        b"POST /kv/e HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        b"GET /clear HTTP/1.1\r\n\r\n"
        b"DELETE /clear HTTP/1.1\r\n\r\n"
        b"GET /nope HTTP/1.1\r\n\r\n"
        b"PUT /kv/t?ttl=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        b"GET /kv/c HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n"
        b"GET /kv?prefix=a HTTP/1.1\r\n\r\n"
        b"POST /txn HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        b"GET /kv/c HTTP/1.1\r\n\r\n"
    )
    assert routed(data) == [
        Put(b"user:1", b"\x00\x01\x02"),
        Put(b"c", b"hi"),
        Get(b"user:1"),
        Delete(b"c"),
        VALUE_EMPTY,
        KV_METHOD_NOT_ALLOWED,
        CLEAR_METHOD_NOT_ALLOWED,
        Clear(),
        NOT_FOUND,
        Extended(Route.KEY, b"t", b"ttl=1"),
        Extended(Route.KEY, b"c"),
        Extended(Route.LIST, b"", b"prefix=a"),
        Extended(Route.TXN),
        Get(b"c"),
    ]
