"""``GET /kv``: query parameters to one ``Scan``, the cursor, and the JSON page, fed
whole; and every scan made from a query is one the engine accepts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.http import listing
from server.http.listing import (
    DEFAULT_LIMIT,
    PAGE_BYTES,
    decode_cursor,
    encode_cursor,
    prefix_end,
    scan_of,
)
from server.http.query import QueryError
from server.http.replies import Evaluation, Reply
from storage import SCAN_MAX_LIMIT, Page, Scan
from storage.ops import check_operation

SCANS = {
    "defaults": (b"", Scan(b"", None, DEFAULT_LIMIT)),
    "prefix": (b"prefix=ab", Scan(b"ab", b"ac", DEFAULT_LIMIT)),
    "prefix_ending_in_ff": (b"prefix=a%FF%FF", Scan(b"a\xff\xff", b"b", DEFAULT_LIMIT)),
    "prefix_all_ff": (b"prefix=%FF", Scan(b"\xff", None, DEFAULT_LIMIT)),
    "start_after": (b"start_after=m", Scan(b"m", None, DEFAULT_LIMIT, after=True)),
    "start_after_before_prefix": (b"prefix=p&start_after=a", Scan(b"p", b"q", DEFAULT_LIMIT)),
    "start_after_inside_prefix": (b"prefix=p&start_after=pz",
                                  Scan(b"pz", b"q", DEFAULT_LIMIT, after=True)),
    "end": (b"end=m", Scan(b"", b"m", DEFAULT_LIMIT)),
    "end_below_the_prefix_end": (b"prefix=a&end=a5", Scan(b"a", b"a5", DEFAULT_LIMIT)),
    "end_above_the_prefix_end": (b"prefix=a&end=z", Scan(b"a", b"b", DEFAULT_LIMIT)),
    "empty_means_absent": (b"prefix=&start_after=&end=", Scan(b"", None, DEFAULT_LIMIT)),
    "limit_and_values": (b"limit=7&values=true", Scan(b"", None, 7, values=True)),
    "values_false": (b"values=false&limit=10000", Scan(b"", None, SCAN_MAX_LIMIT)),
    "empty_cursor_lists_from_the_start": (b"cursor=", Scan(b"", None, DEFAULT_LIMIT, after=True)),
    "plus_is_space": (b"prefix=a+b%2Bc", Scan(b"a b+c", b"a b+d", DEFAULT_LIMIT)),
    "unknown_ignored": (b"foo=bar&limit=1", Scan(b"", None, 1)),
}


@pytest.mark.parametrize(("query", "scan"), SCANS.values(), ids=SCANS.keys())
def test_a_query_is_one_scan(query: bytes, scan: Scan) -> None:
    assert scan_of(query) == scan


@pytest.mark.parametrize(("query", "reason"), [
    (b"limit=0", "invalid limit: 1 to 10000"), (b"limit=10001", "invalid limit: 1 to 10000"),
    (b"limit=-1", "invalid limit"), (b"limit=abc", "invalid limit"), (b"limit=", "invalid limit"),
    (b"limit=%EF%BC%91", "invalid limit"), (b"values=yes", "invalid values: true or false"),
    (b"values=", "invalid values"), (b"values=1", "invalid values"),
    (b"values=True", "invalid values"), (b"prefix=a&prefix=b", "prefix given twice"),
    (b"cursor=!!!!", "invalid cursor"), (b"cursor=abcde", "invalid cursor"),
    (b"cursor=ab%3D%3D", "invalid cursor"), (b"cursor=ab.c", "invalid cursor"),
    (b"cursor=a+b", "invalid cursor"), (b"cursor=YQ.YQ.YQ", "invalid cursor"),
])
def test_a_bad_parameter_is_refused_naming_it(query: bytes, reason: str) -> None:
    with pytest.raises(QueryError, match=reason):
        scan_of(query)
    planned = listing.plan(query)
    assert isinstance(planned, Reply) and planned.status == 400
    assert planned.body.decode().startswith(reason)


def test_a_cursor_carries_the_position_and_the_bound_and_overrides_the_rest() -> None:
    cursor = encode_cursor(b"k\x00\xff", b"z")
    assert decode_cursor(cursor.encode()) == (b"k\x00\xff", b"z")
    assert scan_of(b"prefix=q&end=r&start_after=x&limit=5&values=true&cursor=" + cursor.encode()) \
        == Scan(b"k\x00\xff", b"z", 5, after=True, values=True)


@given(after=st.binary(), end=st.none() | st.binary())
def test_every_cursor_round_trips(after: bytes, end: bytes | None) -> None:
    cursor = encode_cursor(after, end)
    assert cursor.isascii() and "=" not in cursor and "+" not in cursor and "/" not in cursor
    assert decode_cursor(cursor.encode()) == (after, end)


@given(cursor=st.from_regex(r"\A[A-Za-z0-9_.-]*\Z"))
def test_a_string_of_the_cursor_form_is_a_position_and_any_other_is_refused(
        cursor: str) -> None:
    try:
        after, end = decode_cursor(cursor.encode())
    except QueryError:
        assert cursor.count(".") > 1 or any(len(p) % 4 == 1 for p in cursor.split("."))
    else:
        assert (end is None) == ("." not in cursor)
        assert decode_cursor(encode_cursor(after, end).encode()) == (after, end)


@pytest.mark.parametrize(("prefix", "end"), [
    (b"a", b"b"), (b"az", b"a{"), (b"a\xff", b"b"), (b"\x00", b"\x01"), (b"", None),
    (b"\xff\xff", None)])
def test_the_end_of_a_prefix_is_the_first_key_after_it(prefix: bytes, end: bytes | None) -> None:
    assert prefix_end(prefix) == end


@given(query=st.binary(max_size=80))
def test_any_query_gives_a_scan_the_engine_accepts_or_a_400(query: bytes) -> None:
    planned = listing.plan(query)
    if isinstance(planned, Evaluation):
        check_operation(planned.operation)
    else:
        assert planned.status == 400


# -- the page ---------------------------------------------------------------------------


def page(scan: Scan, result: Page) -> dict[str, Any]:
    reply = listing.render(scan, result)
    assert (reply.status, reply.content_type) == (200, b"application/json")
    assert reply.body.endswith(b"\n")
    document: dict[str, Any] = json.loads(reply.body)
    return document


def test_a_page_lists_keys_in_the_order_given_and_ends_with_null() -> None:
    assert page(Scan(), Page([b"a", b"b"])) == {"items": [{"key": "a"}, {"key": "b"}],
                                                "next": None}


def test_values_come_with_their_keys() -> None:
    document = page(Scan(values=True), Page([b"a", b"b"], [b"1", "é".encode()]))
    assert document["items"] == [{"key": "a", "value": "1"}, {"key": "b", "value": "é"}]


def test_bytes_that_are_not_utf8_come_as_base64() -> None:
    document = page(Scan(values=True), Page([b"\xff\x00", "ключ".encode()],
                                            [b"ok", b"\x80"]))
    assert document["items"] == [
        {"key_b64": base64.b64encode(b"\xff\x00").decode(), "value": "ok"},
        {"key": "ключ", "value_b64": base64.b64encode(b"\x80").decode()}]


def test_more_keys_give_a_cursor_after_the_last_one_listed() -> None:
    document = page(Scan(b"", b"q", 2), Page([b"a", b"b"], more=True))
    assert decode_cursor(document["next"].encode()) == (b"b", b"q")


def test_a_page_of_large_values_stops_early_with_a_cursor() -> None:
    big = b"v" * (PAGE_BYTES // 2)
    keys = [b"a", b"b", b"c", b"d"]
    document = page(Scan(values=True), Page(keys, [big] * 4))
    # a and b pass PAGE_BYTES together: the page ends after b
    assert [item["key"] for item in document["items"]] == ["a", "b"]
    assert decode_cursor(document["next"].encode()) == (b"b", None)


def test_one_value_larger_than_a_page_still_makes_a_page() -> None:
    document = page(Scan(values=True), Page([b"a", b"b"], [b"v" * (PAGE_BYTES + 1), b"w"]))
    assert [item["key"] for item in document["items"]] == ["a"]
    assert document["next"] is not None
