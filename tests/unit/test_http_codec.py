"""The sans-IO request codec: every case fed whole and byte-at-a-time."""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable, Iterator

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.http.codec import (
    BODY_TOO_LARGE,
    CONTINUE_EXPECTED,
    CONTINUE_RESPONSE,
    HEADER_TOO_LARGE,
    MALFORMED,
    Conditions,
    ContinueExpected,
    Event,
    ProtocolError,
    Request,
    RequestParser,
    encode_response,
    response_head,
)
from server.http.replies import OCTET_STREAM, STORE_ANSWERS, TEXT_PLAIN, VALUE_HEADS, error_response
from storage import Outcome

MAX_HEADER = 1024
MAX_BODY = 64

Feed = Callable[[RequestParser, bytes], list[Event]]


def parser(max_header_bytes: int = MAX_HEADER, max_body_bytes: int = MAX_BODY) -> RequestParser:
    return RequestParser(max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes)


def feed_whole(p: RequestParser, data: bytes) -> list[Event]:
    return p.feed(data)


def feed_bytewise(p: RequestParser, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += p.feed(data[i : i + 1])
    return events


@pytest.fixture(params=[feed_whole, feed_bytewise], ids=["whole", "bytewise"])
def feed(request: pytest.FixtureRequest) -> Feed:
    fn: Feed = request.param
    return fn


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def fed_until_error(p: RequestParser, data: bytes, size: int) -> tuple[int, list[Event]]:
    """Feed `data` in `size` pieces; return the bytes fed when an error appeared."""
    fed = 0
    for piece in pieces(data, size):
        fed += len(piece)
        events = p.feed(piece)
        if any(isinstance(e, ProtocolError) for e in events):
            return fed, events
    return fed, []


def put(key: bytes, body: bytes, *extra: bytes) -> bytes:
    head = b"PUT /kv/" + key + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n" + body


def get(key: bytes, *extra: bytes) -> bytes:
    head = b"GET /kv/" + key + b" HTTP/1.1\r\nHost: x\r\n"
    return head + b"".join(h + b"\r\n" for h in extra) + b"\r\n"


def chunked(target: bytes, chunks: list[bytes], *extra: bytes) -> bytes:
    head = b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += b"".join(h + b"\r\n" for h in extra) + b"\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return head + body + b"0\r\n\r\n"


# -- requests -----------------------------------------------------------------------


def test_get_becomes_one_request(feed: Feed) -> None:
    assert feed(parser(), get(b"a")) == [Request(b"GET", b"/kv/a", b"", True)]


def test_put_with_content_length_carries_the_body(feed: Feed) -> None:
    assert feed(parser(), put(b"k", b"hello")) == [Request(b"PUT", b"/kv/k", b"hello", True)]


def test_delete_and_other_methods_are_passed_through(feed: Feed) -> None:
    data = (
        b"DELETE /clear HTTP/1.1\r\n\r\n"
        b"PATCH /kv/a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
        b"HEAD /kv/a HTTP/1.1\r\n\r\n"
    )
    assert feed(parser(), data) == [
        Request(b"DELETE", b"/clear", b"", True),
        Request(b"PATCH", b"/kv/a", b"x", True),
        Request(b"HEAD", b"/kv/a", b"", True),
    ]


def test_target_is_raw_with_query_and_escapes(feed: Feed) -> None:
    [req] = feed(parser(), get(b"a%2Fb%00?x=1&y=%20"))
    assert isinstance(req, Request)
    assert req.target == b"/kv/a%2Fb%00?x=1&y=%20"


def test_binary_body_is_returned_unchanged(feed: Feed) -> None:
    body = bytes(range(256))
    p = parser(max_body_bytes=len(body))
    assert feed(p, put(b"bin", body)) == [Request(b"PUT", b"/kv/bin", body, True)]


def test_large_body_in_many_pieces_is_joined_exactly() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB, not valid UTF-8
    p = parser(max_body_bytes=len(body))
    events: list[Event] = []
    for piece in pieces(put(b"big", body), 4093):
        events += p.feed(piece)
    assert events == [Request(b"PUT", b"/kv/big", body, True)]


def test_get_with_body_keeps_the_body_for_the_router(feed: Feed) -> None:
    data = b"GET /kv/a HTTP/1.1\r\nContent-Length: 2\r\n\r\nzz"
    assert feed(parser(), data) == [Request(b"GET", b"/kv/a", b"zz", True)]


def test_header_values_with_obs_text_are_accepted(feed: Feed) -> None:
    assert feed(parser(), get(b"a", b"X-Name: caf\xc3\xa9 \xff")) == [
        Request(b"GET", b"/kv/a", b"", True)
    ]


def test_empty_feed_gives_no_events() -> None:
    p = parser()
    assert p.feed(b"") == []
    assert p.feed(get(b"a")) == [Request(b"GET", b"/kv/a", b"", True)]


def test_memoryview_and_bytearray_input_are_accepted() -> None:
    p = parser()
    assert p.feed(memoryview(get(b"a"))) == [Request(b"GET", b"/kv/a", b"", True)]
    assert p.feed(bytearray(get(b"b"))) == [Request(b"GET", b"/kv/b", b"", True)]


def test_leading_blank_lines_between_requests_are_skipped(feed: Feed) -> None:
    assert feed(parser(), b"\r\n\r\n" + get(b"a")) == [Request(b"GET", b"/kv/a", b"", True)]


# -- pipelining ---------------------------------------------------------------------

PIPELINE = (
    put(b"a", b"1")
    + get(b"a")
    + chunked(b"/kv/b", [b"xy", b"z"])
    + b"DELETE /kv/a HTTP/1.1\r\n\r\n"
    + get(b"b")
)
PIPELINE_EVENTS: list[Event] = [
    Request(b"PUT", b"/kv/a", b"1", True),
    Request(b"GET", b"/kv/a", b"", True),
    Request(b"PUT", b"/kv/b", b"xyz", True),
    Request(b"DELETE", b"/kv/a", b"", True),
    Request(b"GET", b"/kv/b", b"", True),
]


def test_pipelined_requests_come_out_in_order(feed: Feed) -> None:
    assert feed(parser(), PIPELINE) == PIPELINE_EVENTS


def test_partial_trailing_request_is_completed_by_the_next_feed() -> None:
    p = parser()
    first = get(b"a") + get(b"b")[:10]
    assert p.feed(first) == [Request(b"GET", b"/kv/a", b"", True)]
    assert p.feed(get(b"b")[10:]) == [Request(b"GET", b"/kv/b", b"", True)]


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(PIPELINE)), max_size=12))
def test_pipeline_split_anywhere_gives_the_same_events(cuts: list[int]) -> None:
    p = parser()
    bounds = [0, *sorted(cuts), len(PIPELINE)]
    events: list[Event] = []
    for lo, hi in itertools.pairwise(bounds):
        events += p.feed(PIPELINE[lo:hi])
    assert events == PIPELINE_EVENTS


def test_many_pipelined_requests_before_a_partial_one_are_not_a_large_header() -> None:
    # 400 requests of ~40 bytes in one feed far exceed the 1 KiB header cap in total,
    # but no single header section does.
    p = parser()
    data = get(b"k") * 400 + get(b"last")[:20]
    events = p.feed(data)
    assert events == [Request(b"GET", b"/kv/k", b"", True)] * 400
    assert p.feed(get(b"last")[20:]) == [Request(b"GET", b"/kv/last", b"", True)]


def test_large_body_before_a_partial_request_is_not_a_large_header() -> None:
    body = b"v" * 100_000
    p = parser(max_body_bytes=len(body))
    events = p.feed(put(b"big", body) + get(b"next")[:25])
    assert events == [Request(b"PUT", b"/kv/big", body, True)]
    assert p.feed(get(b"next")[25:]) == [Request(b"GET", b"/kv/next", b"", True)]


# -- chunked bodies -----------------------------------------------------------------


def test_chunked_body_is_dechunked(feed: Feed) -> None:
    data = chunked(b"/kv/c", [b"abc", b"\x00\xff", b"d" * 20])
    body = b"abc\x00\xff" + b"d" * 20
    assert feed(parser(), data) == [Request(b"PUT", b"/kv/c", body, True)]


def test_chunked_body_split_at_every_offset_gives_the_same_request() -> None:
    data = chunked(b"/kv/c", [b"hello", b"world!"])
    for cut in range(len(data) + 1):
        p = parser()
        events = p.feed(data[:cut]) + p.feed(data[cut:])
        assert events == [Request(b"PUT", b"/kv/c", b"helloworld!", True)], cut


def test_chunk_extensions_and_trailers_are_accepted(feed: Feed) -> None:
    data = (
        b"PUT /kv/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    assert feed(parser(), data) == [Request(b"PUT", b"/kv/t", b"abc", True)]


def test_empty_chunked_body_is_an_empty_body(feed: Feed) -> None:
    assert feed(parser(), chunked(b"/kv/e", [])) == [Request(b"PUT", b"/kv/e", b"", True)]


# -- Expect: 100-continue -----------------------------------------------------------


def test_continue_is_expected_before_the_body_arrives(feed: Feed) -> None:
    data = put(b"k", b"value", b"Expect: 100-continue")
    head, body = data[: -len(b"value")], b"value"
    p = parser()
    assert feed(p, head) == [CONTINUE_EXPECTED]
    assert feed(p, body) == [Request(b"PUT", b"/kv/k", b"value", True)]


def test_continue_comes_before_the_request_when_fed_together(feed: Feed) -> None:
    data = put(b"k", b"value", b"Expect: 100-continue")
    assert feed(parser(), data) == [ContinueExpected(), Request(b"PUT", b"/kv/k", b"value", True)]


@pytest.mark.parametrize("header", [b"expect: 100-Continue", b"EXPECT:   100-CONTINUE  "])
def test_expect_header_is_case_insensitive(feed: Feed, header: bytes) -> None:
    assert feed(parser(), put(b"k", b"v", header))[0] == CONTINUE_EXPECTED


def test_continue_is_expected_for_a_chunked_body(feed: Feed) -> None:
    data = chunked(b"/kv/c", [b"abc"], b"Expect: 100-continue")
    assert feed(parser(), data) == [CONTINUE_EXPECTED, Request(b"PUT", b"/kv/c", b"abc", True)]


def test_no_continue_without_a_body(feed: Feed) -> None:
    data = get(b"k", b"Expect: 100-continue") + put(b"k", b"", b"Expect: 100-continue")
    assert feed(parser(), data) == [
        Request(b"GET", b"/kv/k", b"", True),
        Request(b"PUT", b"/kv/k", b"", True),
    ]


def test_no_continue_for_http_1_0_clients(feed: Feed) -> None:
    data = b"PUT /kv/k HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nv"
    assert feed(parser(), data) == [Request(b"PUT", b"/kv/k", b"v", False)]


def test_other_expectations_are_ignored(feed: Feed) -> None:
    data = put(b"k", b"v", b"Expect: something-else")
    assert feed(parser(), data) == [Request(b"PUT", b"/kv/k", b"v", True)]


def test_oversized_body_with_expect_gets_413_and_no_continue(feed: Feed) -> None:
    head = b"PUT /kv/k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (
        MAX_BODY + 1
    )
    assert feed(parser(), head) == [BODY_TOO_LARGE]


# -- caps: header section -----------------------------------------------------------


def head_of_size(size: int) -> bytes:
    """A GET whose header section (request line to blank line) is exactly `size` bytes."""
    base = b"GET /kv/a HTTP/1.1\r\nX-Pad: \r\n\r\n"
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (size - len(base)))


def test_header_section_at_the_cap_is_accepted(feed: Feed) -> None:
    data = head_of_size(MAX_HEADER)
    assert len(data) == MAX_HEADER
    assert feed(parser(), data) == [Request(b"GET", b"/kv/a", b"", True)]


def test_header_section_one_byte_over_the_cap_gets_431(feed: Feed) -> None:
    assert feed(parser(), head_of_size(MAX_HEADER + 1)) == [HEADER_TOO_LARGE]


def test_one_mebibyte_header_in_pieces_is_refused_early() -> None:
    cap = 64 * 1024
    data = b"GET /kv/a HTTP/1.1\r\nX-Big: " + b"b" * (1 << 20) + b"\r\n\r\n"
    fed, events = fed_until_error(parser(max_header_bytes=cap), data, 1024)
    assert events == [HEADER_TOO_LARGE]
    assert fed <= cap + 1024  # at most one piece past the cap was ever held


def test_one_mebibyte_header_byte_at_a_time_is_refused_at_the_cap() -> None:
    cap = 4096
    data = b"GET /kv/a HTTP/1.1\r\nX-Big: " + b"b" * (1 << 20)
    fed, events = fed_until_error(parser(max_header_bytes=cap), data, 1)
    assert events == [HEADER_TOO_LARGE]
    assert fed == cap + 1


def test_one_mebibyte_header_fed_whole_without_its_end_gets_431() -> None:
    data = b"GET /kv/a HTTP/1.1\r\nX-Big: " + b"b" * (1 << 20)
    assert parser(max_header_bytes=64 * 1024).feed(data) == [HEADER_TOO_LARGE]


def test_long_target_gets_431(feed: Feed) -> None:
    data = b"GET /kv/" + b"k" * MAX_HEADER + b" HTTP/1.1\r\n\r\n"
    assert feed(parser(), data) == [HEADER_TOO_LARGE]


def test_many_small_headers_get_431(feed: Feed) -> None:
    data = get(b"a", *[b"X-%d: v" % i for i in range(200)])
    assert feed(parser(), data) == [HEADER_TOO_LARGE]


def test_long_header_name_in_pieces_is_refused_early() -> None:
    cap = 8192
    data = b"GET /kv/a HTTP/1.1\r\nX" + b"n" * (1 << 20)
    fed, events = fed_until_error(parser(max_header_bytes=cap), data, 512)
    assert events == [HEADER_TOO_LARGE]
    assert fed <= cap + 512


def test_oversized_header_after_a_complete_request_keeps_that_request() -> None:
    data = get(b"ok") + b"GET /kv/a HTTP/1.1\r\nX-Big: " + b"b" * (4 * MAX_HEADER)
    assert parser().feed(data) == [Request(b"GET", b"/kv/ok", b"", True), HEADER_TOO_LARGE]


# -- caps: body ---------------------------------------------------------------------


def test_body_at_the_cap_is_accepted(feed: Feed) -> None:
    body = b"x" * MAX_BODY
    assert feed(parser(), put(b"k", body)) == [Request(b"PUT", b"/kv/k", body, True)]


def test_oversized_content_length_gets_413_before_the_body(feed: Feed) -> None:
    head = b"PUT /kv/k HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
    p = parser()
    assert feed(p, head) == [BODY_TOO_LARGE]
    assert p.feed(b"x" * (MAX_BODY + 1)) == []


def test_64_mib_upload_is_refused_from_its_headers() -> None:
    cap = 64 * 1024 * 1024
    head = b"PUT /kv/k HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (cap + 1)
    assert parser(max_body_bytes=cap).feed(head + b"first bytes") == [BODY_TOO_LARGE]


def test_oversized_chunked_body_gets_413_before_it_ends(feed: Feed) -> None:
    head = b"PUT /kv/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n%s\r\n" % (40, b"c" * 40)
    p = parser()
    assert feed(p, head + chunk) == []
    assert feed(p, chunk) == [BODY_TOO_LARGE]
    assert p.feed(b"0\r\n\r\n") == []


def test_chunked_body_at_the_cap_is_accepted(feed: Feed) -> None:
    data = chunked(b"/kv/k", [b"a" * (MAX_BODY - 1), b"b"])
    assert feed(parser(), data) == [
        Request(b"PUT", b"/kv/k", b"a" * (MAX_BODY - 1) + b"b", True)
    ]


# -- malformed input ----------------------------------------------------------------

MALFORMED_INPUTS = {
    "garbage": b"garbage\r\n\r\n",
    "binary_noise": b"\x00\x01\x02\xff\r\n\r\n",
    "lowercase_method": b"get /kv/a HTTP/1.1\r\n\r\n",
    "unknown_method": b"FOO /kv/a HTTP/1.1\r\n\r\n",
    "bad_version": b"GET /kv/a HTTP/9.9\r\n\r\n",
    "space_in_target": b"GET /kv/a b HTTP/1.1\r\n\r\n",
    "raw_non_ascii_target": b"GET /kv/\xc3\xa9 HTTP/1.1\r\n\r\n",
    "bare_lf": b"GET /kv/a HTTP/1.1\nHost: x\n\n",
    "space_in_header_name": b"GET /kv/a HTTP/1.1\r\nBad Name: x\r\n\r\n",
    "control_char_in_value": b"GET /kv/a HTTP/1.1\r\nX: \x01\r\n\r\n",
    "obs_fold": b"GET /kv/a HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n",
    "non_numeric_length": b"PUT /kv/a HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    "negative_length": b"PUT /kv/a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    "overflowing_length": b"PUT /kv/a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "duplicate_length": b"PUT /kv/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "length_and_chunked": (
        b"PUT /kv/a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "non_chunked_coding": b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad_chunk_size": b"PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "upgrade": b"GET /kv/a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("data", MALFORMED_INPUTS.values(), ids=MALFORMED_INPUTS.keys())
def test_malformed_request_gets_400(feed: Feed, data: bytes) -> None:
    assert feed(parser(), data) == [MALFORMED]


@pytest.mark.parametrize("data", MALFORMED_INPUTS.values(), ids=MALFORMED_INPUTS.keys())
def test_parser_stops_after_a_malformed_request(data: bytes) -> None:
    p = parser()
    p.feed(data)
    assert p.feed(get(b"a")) == []


def test_valid_request_then_garbage_gives_the_request_then_400(feed: Feed) -> None:
    assert feed(parser(), get(b"a") + b"garbage\r\n\r\n" + get(b"b")) == [
        Request(b"GET", b"/kv/a", b"", True),
        MALFORMED,
    ]


def test_bug_in_a_callback_is_raised_not_answered_with_400() -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    # A parser whose message-complete callback has a bug (attributes, not module
    # globals, are what can be replaced when the codec runs compiled).
    p = parser()
    p._parser = httptools.HttpRequestParser(types.SimpleNamespace(on_message_complete=broken))
    with pytest.raises(RuntimeError, match="bug"):
        p.feed(put(b"k", b"v"))


def test_upgrade_request_is_not_delivered_before_its_400() -> None:
    data = get(b"a", b"Connection: Upgrade", b"Upgrade: h2c") + get(b"b")
    assert parser().feed(data) == [MALFORMED]


# -- keep-alive ---------------------------------------------------------------------

KEEP_ALIVE_CASES = {
    "http11_default": (b"GET / HTTP/1.1\r\n\r\n", True),
    "http11_connection_close": (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
    "http11_connection_close_any_case": (b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", False),
    "http10_default": (b"GET / HTTP/1.0\r\n\r\n", False),
    "http10_keep_alive": (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
}


@pytest.mark.parametrize(
    ("data", "keep_alive"), KEEP_ALIVE_CASES.values(), ids=KEEP_ALIVE_CASES.keys()
)
def test_keep_alive_follows_version_and_connection_header(
    feed: Feed, data: bytes, keep_alive: bool
) -> None:
    assert feed(parser(), data) == [Request(b"GET", b"/", b"", keep_alive)]


def test_bytes_after_a_closing_request_are_ignored_without_error(feed: Feed) -> None:
    data = get(b"a", b"Connection: close") + get(b"b")
    p = parser()
    assert feed(p, data) == [Request(b"GET", b"/kv/a", b"", False)]
    assert p.feed(get(b"c")) == []


def test_bytes_after_an_http10_request_are_ignored(feed: Feed) -> None:
    data = b"GET /kv/a HTTP/1.0\r\n\r\n" + get(b"b")
    assert feed(parser(), data) == [Request(b"GET", b"/kv/a", b"", False)]


# -- preconditions ------------------------------------------------------------------


def test_a_request_without_preconditions_has_no_conditions(feed: Feed) -> None:
    [req] = feed(parser(), get(b"a", b"Accept: */*", b"If-Range: x", b"Authorization: y"))
    assert isinstance(req, Request) and req.conditions is None


def test_if_match_and_if_none_match_are_kept_as_sent(feed: Feed) -> None:
    data = put(b"k", b"v", b'If-Match: "a", W/"b"', b"If-None-Match:   *  ")
    assert feed(parser(), data) == [
        Request(b"PUT", b"/kv/k", b"v", True, Conditions(b'"a", W/"b"', b"*"))]


@pytest.mark.parametrize("name", [b"if-match", b"IF-MATCH", b"If-match"])
def test_precondition_names_are_case_insensitive(feed: Feed, name: bytes) -> None:
    [req] = feed(parser(), get(b"a", name + b': "x"'))
    assert isinstance(req, Request) and req.conditions == Conditions(if_match=b'"x"')


def test_repeated_precondition_lines_are_one_list(feed: Feed) -> None:
    data = get(b"a", b'If-None-Match: "x"', b"Host-Extra: 1", b'If-None-Match: "y", "z"')
    [req] = feed(parser(), data)
    assert isinstance(req, Request)
    assert req.conditions == Conditions(if_none_match=b'"x", "y", "z"')


def test_preconditions_belong_to_their_own_request_only(feed: Feed) -> None:
    data = get(b"a", b'If-Match: "x"') + put(b"b", b"v") + get(b"c", b"If-None-Match: *")
    assert feed(parser(), data) == [
        Request(b"GET", b"/kv/a", b"", True, Conditions(if_match=b'"x"')),
        Request(b"PUT", b"/kv/b", b"v", True),
        Request(b"GET", b"/kv/c", b"", True, Conditions(if_none_match=b"*")),
    ]


def test_preconditions_with_a_chunked_body_and_expect(feed: Feed) -> None:
    data = chunked(b"/kv/k", [b"ab", b"c"], b"Expect: 100-continue", b"If-None-Match: *")
    assert feed(parser(), data) == [
        CONTINUE_EXPECTED, Request(b"PUT", b"/kv/k", b"abc", True, Conditions(None, b"*"))]


# -- responses ----------------------------------------------------------------------


def test_continue_response_is_exact() -> None:
    assert CONTINUE_RESPONSE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_empty_200_is_exact() -> None:
    assert encode_response(200) == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_text_error_is_exact() -> None:
    assert encode_response(404, b"key not found\n", content_type=TEXT_PLAIN) == (
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nkey not found\n"
    )


def test_closing_response_with_extra_headers_is_exact() -> None:
    got = encode_response(
        405,
        b"method not allowed\n",
        content_type=TEXT_PLAIN,
        keep_alive=False,
        headers=((b"Allow", b"GET, PUT, DELETE"),),
    )
    assert got == (
        b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 19\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        b"Allow: GET, PUT, DELETE\r\n\r\nmethod not allowed\n"
    )


def test_binary_value_response_is_exact() -> None:
    value = b"\x00\xff\r\n"
    assert encode_response(200, value, content_type=OCTET_STREAM) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\n"
    )


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (413, b"HTTP/1.1 413 Request Entity Too Large\r\n"),
        (431, b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (503, b"HTTP/1.1 503 Service Unavailable\r\n"),
        (507, b"HTTP/1.1 507 Insufficient Storage\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),
    ],
)
def test_status_line_has_the_standard_reason(status: int, line: bytes) -> None:
    assert encode_response(status).startswith(line)


@pytest.mark.parametrize("keep_alive", [True, False])
def test_ok_empty_matches_the_encoder(keep_alive: bool) -> None:
    ok = STORE_ANSWERS[keep_alive].by_outcome[Outcome.OK]
    assert ok == encode_response(200, keep_alive=keep_alive)


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("length", [0, 1, 64 * 1024 * 1024])
def test_ok_value_head_matches_the_encoder(keep_alive: bool, length: int) -> None:
    tag = b"0123456789abcdef0123456789abcdef"
    expected = response_head(200, length, content_type=OCTET_STREAM, keep_alive=keep_alive,
                             headers=((b"ETag", b'"' + tag + b'"'),))
    assert VALUE_HEADS[keep_alive] % (length, tag) == expected


@pytest.mark.parametrize("error", [MALFORMED, BODY_TOO_LARGE, HEADER_TOO_LARGE])
def test_protocol_error_response_closes_the_connection(error: ProtocolError) -> None:
    assert error_response(error) == encode_response(
        error.status, error.body, content_type=TEXT_PLAIN, keep_alive=False
    )
    assert b"\r\nConnection: close\r\n" in error_response(error)


def test_protocol_error_bodies_are_the_documented_strings() -> None:
    assert (MALFORMED.status, MALFORMED.body) == (400, b"malformed request\n")
    assert (BODY_TOO_LARGE.status, BODY_TOO_LARGE.body) == (413, b"value too large\n")
    assert (HEADER_TOO_LARGE.status, HEADER_TOO_LARGE.body) == (
        431,
        b"request header fields too large\n",
    )
