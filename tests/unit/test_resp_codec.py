"""The sans-IO RESP codec: every request shape fed whole, byte at a time and split at
every position (all must agree, errors included); Redis 7.0's exact error texts; the
caps just at and just over their limits; exact reply bytes in RESP2 and RESP3, and the
replies read back by a real client's parser."""

from __future__ import annotations

import importlib
import math
import random
import socket
import time
import warnings
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.resp.codec import (
    BULK_COUNT_TOO_BIG,
    INLINE_TOO_BIG,
    INVALID_BULK_LENGTH,
    INVALID_MULTIBULK_LENGTH,
    MBULK_COUNT_TOO_BIG,
    NULL_ARRAY,
    NULL_BULK,
    OK,
    PONG,
    QUEUED,
    UNBALANCED_QUOTES,
    Parsed,
    ProtocolError,
    RespParser,
    array,
    boolean,
    bulk,
    double,
    encode_value,
    error,
    expected_dollar,
    integer,
    map_reply,
    null,
    null_array,
    set_reply,
    simple,
    split_args,
    verbatim,
)

MAX_BULK = 1024


def parser(max_bulk: int = MAX_BULK, **caps: int) -> RespParser:
    return RespParser(max_bulk=max_bulk, **caps)


def feed_pieces(pieces: Iterable[bytes], **caps: int) -> list[Parsed]:
    p = parser(**caps)
    out: list[Parsed] = []
    for piece in pieces:
        out += p.feed(piece)
    return out


def parse_every_way(data: bytes, **caps: int) -> list[Parsed]:
    """Parse `data` whole, a byte at a time (with empty feeds between) and split in two
    at every position; assert that all agree and return what they agree on."""
    whole = feed_pieces([data], **caps)
    bytewise = [piece for i in range(len(data)) for piece in (data[i : i + 1], b"")]
    assert feed_pieces(bytewise, **caps) == whole
    for i in range(1, len(data)):
        assert feed_pieces([data[:i], data[i:]], **caps) == whole, f"split at {i}"
    for item in whole:
        if isinstance(item, list):
            assert all(type(arg) is bytes for arg in item)
    return whole


def multibulk(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


# -- well-formed requests ---------------------------------------------------------

REQUESTS = [
    pytest.param(multibulk(b"PING"), [[b"PING"]], id="multibulk"),
    pytest.param(multibulk(b"SET", b"k", b"a\r\nb\x00\xff"), [[b"SET", b"k", b"a\r\nb\x00\xff"]],
                 id="binary-bulk-with-crlf-inside"),
    pytest.param(multibulk(b"SET", b"k", b""), [[b"SET", b"k", b""]], id="empty-bulk"),
    pytest.param(multibulk(b"GET", b"k") + multibulk(b"PING") + multibulk(b"DEL", b"a", b"b"),
                 [[b"GET", b"k"], [b"PING"], [b"DEL", b"a", b"b"]], id="pipelined"),
    pytest.param(b"*0\r\n" + multibulk(b"PING"), [[b"PING"]], id="zero-count-is-skipped"),
    pytest.param(b"*-10\r\n" + multibulk(b"PING"), [[b"PING"]], id="negative-count-is-skipped"),
    pytest.param(b"*1\rX$4\rYPING\r\n", [[b"PING"]], id="byte-after-cr-is-not-checked"),
    pytest.param(b"*1\r\n$4\r\nPINGxy*1\r\n$1\r\nA\r\n", [[b"PING"], [b"A"]],
                 id="two-bytes-after-bulk-are-not-checked"),
    pytest.param(b"*2\r\n$10\r\n0123456789\r\n$3\r\n\r\n\r\r\n", [[b"0123456789", b"\r\n\r"]],
                 id="bulk-lengths-not-the-bytes-decide"),
    pytest.param(b"PING\r\n", [[b"PING"]], id="inline"),
    pytest.param(b"PING\n", [[b"PING"]], id="inline-lf-only"),
    pytest.param(b"  set\tkey   value \r\n", [[b"set", b"key", b"value"]],
                 id="inline-whitespace"),
    pytest.param(b"\r\n\n   \r\n\t\n" + b"PING\r\n", [[b"PING"]], id="blank-lines-are-skipped"),
    pytest.param(b"a\rb\r\r\n", [[b"a", b"b"]], id="inline-cr-inside-is-a-separator"),
    pytest.param(b"ECHO a\\nb\\\\\r\n", [[b"ECHO", b"a\\nb\\\\"]], id="unquoted-backslash-literal"),
    pytest.param(b"PING\r\n" + multibulk(b"GET", b"k") + b"GET j\n",
                 [[b"PING"], [b"GET", b"k"], [b"GET", b"j"]], id="inline-and-multibulk-mixed"),
    pytest.param(b'set "a b" \'c d\'\r\n', [[b"set", b"a b", b"c d"]], id="quotes"),
    pytest.param(b'echo "\\n\\r\\t\\b\\a\\\\\\"\\q"\r\n', [[b"echo", b'\n\r\t\b\a\\"q']],
                 id="double-quote-escapes"),
    pytest.param(b'echo "\\x41\\xfF\\x00\\x4" "\\xg1"\r\n', [[b"echo", b"A\xff\x00x4", b"xg1"]],
                 id="hex-escapes"),
    pytest.param(b"echo 'it\\'s' 'a\\nb\"'\r\n", [[b"echo", b"it's", b'a\\nb"']],
                 id="single-quote-escapes"),
    pytest.param(b'echo "" \'\'\r\n', [[b"echo", b"", b""]], id="empty-quoted"),
    pytest.param(b'echo a"b c" x\'y\'\r\n', [[b"echo", b"ab c", b"xy"]], id="quote-inside-word"),
    pytest.param(b'echo "a"\t"b"\x0b"c"\r\n', [[b"echo", b"a", b"b", b"c"]],
                 id="closing-quote-then-any-space"),
    pytest.param(b"echo a\x0bb \x0c c\r\n", [[b"echo", b"a\x0bb", b"c"]],
                 id="vertical-tab-inside-a-word-is-kept"),
    pytest.param(b"echo a\x00b\r\n", [[b"echo", b"a\x00b"]], id="nul-is-an-ordinary-byte"),
]


@pytest.mark.parametrize(("data", "expected"), REQUESTS)
def test_request_shapes_parse_the_same_however_split(data: bytes, expected: list[Parsed]) -> None:
    assert parse_every_way(data) == expected


def test_incomplete_request_yields_nothing_yet() -> None:
    p = parser()
    assert p.feed(b"*2\r\n$3\r\nGET\r\n$1\r\n") == []
    assert p.feed(b"k") == []
    assert p.feed(b"\r") == []
    assert p.feed(b"\n") == [[b"GET", b"k"]]
    assert p.feed(b"PING") == []
    assert p.feed(b"\r\n") == [[b"PING"]]


def test_many_small_pipelined_commands_in_one_read() -> None:
    commands = [[b"SET", b"key:%d" % i, b"v" * (i % 7)] for i in range(1000)]
    data = b"".join(multibulk(*c) for c in commands)
    assert parser().feed(data) == commands


def test_large_bulk_in_many_small_pieces_is_exact_and_linear() -> None:
    value = bytes(range(256)) * (32 * 1024)  # 8 MiB
    data = multibulk(b"SET", b"big", value) + multibulk(b"PING")
    p = parser(max_bulk=len(value))
    out: list[Parsed] = []
    began = time.perf_counter()
    for i in range(0, len(data), 1000):
        out += p.feed(data[i : i + 1000])
    elapsed = time.perf_counter() - began
    assert out == [[b"SET", b"big", value], [b"PING"]]
    # Copying the bytes so far on every read would be ~35 GB of copying here.
    assert elapsed < 2.0


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_large_bulk_whose_crlf_arrives_apart(cut: int) -> None:
    value = b"x" * 100_000
    data = multibulk(b"SET", b"k", value)
    tail = len(data) - cut
    p = parser(max_bulk=len(value))
    assert p.feed(data[:tail]) == []
    assert p.feed(data[tail:]) == [[b"SET", b"k", value]]


# -- malformed requests: Redis 7.0's replies ----------------------------------------

MALFORMED = [
    pytest.param(b"*abc\r\n", INVALID_MULTIBULK_LENGTH, id="count-not-a-number"),
    pytest.param(b"*\r\n", INVALID_MULTIBULK_LENGTH, id="count-empty"),
    pytest.param(b"*1 \r\n", INVALID_MULTIBULK_LENGTH, id="count-trailing-space"),
    pytest.param(b"* 1\r\n", INVALID_MULTIBULK_LENGTH, id="count-leading-space"),
    pytest.param(b"*+1\r\n", INVALID_MULTIBULK_LENGTH, id="count-plus"),
    pytest.param(b"*01\r\n", INVALID_MULTIBULK_LENGTH, id="count-leading-zero"),
    pytest.param(b"*-0\r\n", INVALID_MULTIBULK_LENGTH, id="count-minus-zero"),
    pytest.param(b"*-\r\n", INVALID_MULTIBULK_LENGTH, id="count-minus-only"),
    pytest.param(b"*20000000\r\n", INVALID_MULTIBULK_LENGTH, id="count-out-of-range"),
    pytest.param(b"*9223372036854775808\r\n", INVALID_MULTIBULK_LENGTH, id="count-over-64-bits"),
    pytest.param(b"*1\r\nfoo\r\n", expected_dollar(ord("f")), id="bulk-without-dollar"),
    pytest.param(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", expected_dollar(ord("f")),
                 id="wrong-multibulk-payload-header"),
    pytest.param(b"*1\r\n\r\n", expected_dollar(13), id="bulk-is-an-empty-line"),
    pytest.param(b"*1\r\n$-1\r\n", INVALID_BULK_LENGTH, id="bulk-length-negative"),
    pytest.param(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", INVALID_BULK_LENGTH,
                 id="negative-multibulk-payload-length"),
    pytest.param(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", INVALID_BULK_LENGTH,
                 id="out-of-range-multibulk-payload-length"),
    pytest.param(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", INVALID_BULK_LENGTH,
                 id="non-number-multibulk-payload-length"),
    pytest.param(b"*1\r\n$\r\n", INVALID_BULK_LENGTH, id="bulk-length-empty"),
    pytest.param(b"*1\r\n$01\r\nx\r\n", INVALID_BULK_LENGTH, id="bulk-length-leading-zero"),
    pytest.param(b"*1\r\n$ 1\r\nx\r\n", INVALID_BULK_LENGTH, id="bulk-length-space"),
    pytest.param(b"*1\r\n$-0\r\n\r\n", INVALID_BULK_LENGTH, id="bulk-length-minus-zero"),
    pytest.param(b'set "a\r\n', UNBALANCED_QUOTES, id="unclosed-double-quote"),
    pytest.param(b"set 'a\r\n", UNBALANCED_QUOTES, id="unclosed-single-quote"),
    pytest.param(b'set "a\\"\r\n', UNBALANCED_QUOTES, id="escaped-closing-quote"),
    pytest.param(b'set "a\\\r\n', UNBALANCED_QUOTES, id="backslash-at-end-in-quotes"),
    pytest.param(b'set "foo"bar\r\n', UNBALANCED_QUOTES, id="double-quote-then-letter"),
    pytest.param(b"set 'foo'bar\r\n", UNBALANCED_QUOTES, id="single-quote-then-letter"),
    pytest.param(b"set 'foo'\"x\"\r\n", UNBALANCED_QUOTES, id="quote-then-quote"),
]


@pytest.mark.parametrize(("data", "expected"), MALFORMED)
def test_malformed_requests_get_redis_errors(data: bytes, expected: ProtocolError) -> None:
    assert parse_every_way(data) == [expected]


@pytest.mark.parametrize(("data", "message"), [
    (b"*1\r\nfoo\r\n", "Protocol error: expected '$', got 'f'"),
    (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
    (b"*1\r\n\nx\r\n", "Protocol error: expected '$', got ' '"),
    (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
    (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
    (b"*x\r\n", "Protocol error: invalid multibulk length"),
    (b'"\r\n', "Protocol error: unbalanced quotes in request"),
])
def test_error_texts_are_redis_words(data: bytes, message: str) -> None:
    [err] = parser().feed(data)
    assert err == ProtocolError(message)


def test_a_quoted_high_byte_is_sent_back_as_that_byte() -> None:
    [err] = parser().feed(b"*1\r\n\xff\r\n")
    assert isinstance(err, ProtocolError)
    assert err.reply() == b"-ERR Protocol error: expected '$', got '\xff'\r\n"


def test_commands_before_an_error_are_returned_and_nothing_after() -> None:
    p = parser()
    out = p.feed(multibulk(b"PING") + b"*1\r\n$x\r\n" + multibulk(b"GET", b"k"))
    assert out == [[b"PING"], INVALID_BULK_LENGTH]
    assert p.feed(multibulk(b"PING")) == []
    assert p.feed(b"PING\r\n") == []


def test_an_error_reply_is_err_and_the_message() -> None:
    assert INVALID_BULK_LENGTH.reply() == b"-ERR Protocol error: invalid bulk length\r\n"


# -- caps -----------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "ok"), [(8, True), (9, False)])
def test_max_bulk_just_at_and_over(size: int, ok: bool) -> None:
    value = b"v" * size
    expected: list[Parsed] = [[b"SET", value]] if ok else [INVALID_BULK_LENGTH]
    assert parse_every_way(multibulk(b"SET", value), max_bulk=8) == expected


@pytest.mark.parametrize(("count", "ok"), [(4, True), (5, False)])
def test_max_multibulk_just_at_and_over(count: int, ok: bool) -> None:
    args = [b"a"] * count
    expected: list[Parsed] = [args] if ok else [INVALID_MULTIBULK_LENGTH]
    assert parse_every_way(multibulk(*args), max_multibulk=4) == expected


def test_default_max_multibulk_is_redis_6s() -> None:
    assert parser().feed(b"*1048576\r\n") == []
    assert parser().feed(b"*1048577\r\n") == [INVALID_MULTIBULK_LENGTH]


INLINE_CAP = 16


@pytest.mark.parametrize(("data", "expected"), [
    (b"x" * 16 + b"\n", [[b"x" * 16]]),
    (b"x" * 17 + b"\n", [INLINE_TOO_BIG]),
    (b"x" * 15 + b"\r\n", [[b"x" * 15]]),
    (b"x" * 16 + b"\r\n", [INLINE_TOO_BIG]),  # the CR is part of the line until LF comes
    (b"x" * 16, []),
    (b"x" * 17, [INLINE_TOO_BIG]),
    (b"*" + b"1" * 15 + b"\r\n", [INVALID_MULTIBULK_LENGTH]),
    (b"*" + b"1" * 16 + b"\r\n", [MBULK_COUNT_TOO_BIG]),
    (b"*" + b"0" * 15, []),
    (b"*" + b"0" * 16, [MBULK_COUNT_TOO_BIG]),
    (b"*" + b"0" * 15 + b"\r", []),
    (b"*1\r\n$" + b"1" * 15 + b"\r\n", [INVALID_BULK_LENGTH]),
    (b"*1\r\n$" + b"1" * 16 + b"\r\n", [BULK_COUNT_TOO_BIG]),
    (b"*1\r\n$" + b"0" * 15, []),
    (b"*1\r\n$" + b"0" * 16, [BULK_COUNT_TOO_BIG]),
    (b"*1\r\n" + b"f" * 17 + b"\r\n", [BULK_COUNT_TOO_BIG]),  # the length before the '$'
    (b"*1\r\n" + b"f" * 16 + b"\r\n", [expected_dollar(ord("f"))]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_max_inline_just_at_and_over(data: bytes, expected: list[Parsed]) -> None:
    assert parse_every_way(data, max_inline=INLINE_CAP) == expected


@pytest.mark.parametrize(("kept", "more", "error"), [
    (b"x" * 16, b"x", INLINE_TOO_BIG),
    (b"*" + b"0" * 15, b"0\r", MBULK_COUNT_TOO_BIG),
    (b"*1\r\n$" + b"0" * 15, b"0\r", BULK_COUNT_TOO_BIG),
])
def test_a_line_is_refused_as_soon_as_it_is_too_long(kept: bytes, more: bytes,
                                                      error: ProtocolError) -> None:
    p = parser(max_inline=INLINE_CAP)
    assert p.feed(kept) == []
    assert p.feed(more) == [error]


@pytest.mark.parametrize("piece", [1, 1000, 70_000])
def test_default_inline_cap_is_64k(piece: int) -> None:
    at_cap = b"x" * (64 * 1024)
    assert feed_pieces(_cut(at_cap + b"\n", piece)) == [[at_cap]]
    assert feed_pieces(_cut(at_cap + b"x\n", piece)) == [INLINE_TOO_BIG]
    assert feed_pieces(_cut(at_cap, piece)) == []
    assert feed_pieces(_cut(at_cap + b"x", piece)) == [INLINE_TOO_BIG]


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- properties ---------------------------------------------------------------------

args_lists = st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=6), max_size=8)


def random_cuts(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(args_lists, st.lists(st.integers(min_value=0), max_size=12))
def test_multibulk_round_trips_whatever_the_cuts(commands: list[list[bytes]],
                                                  cuts: list[int]) -> None:
    data = b"".join(multibulk(*c) for c in commands)
    assert feed_pieces(random_cuts(data, cuts)) == commands


def quoted(arg: bytes) -> bytes:
    """`arg` as Redis's sdscatrepr writes it: what sdssplitargs reads back."""
    escapes = {b"\\"[0]: b"\\\\", b'"'[0]: b'\\"', 10: b"\\n", 13: b"\\r", 9: b"\\t",
               7: b"\\a", 8: b"\\b"}
    body = b"".join(escapes.get(c) or (bytes((c,)) if 32 <= c < 127 else b"\\x%02x" % c)
                    for c in arg)
    return b'"' + body + b'"'


@settings(max_examples=300, deadline=None)
@given(args_lists, st.lists(st.integers(min_value=0), max_size=12),
       st.sampled_from([b" ", b"\t", b"  \t "]))
def test_quoted_inline_round_trips_whatever_the_cuts(commands: list[list[bytes]],
                                                     cuts: list[int], sep: bytes) -> None:
    data = b"".join(sep.join(quoted(a) for a in c) + b"\r\n" for c in commands)
    assert feed_pieces(random_cuts(data, cuts)) == commands


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=12).filter(
           lambda b: not any(c in b" \t\r\n\x0b\x0c\"'" for c in b)), min_size=1, max_size=6))
def test_plain_words_split_on_whitespace(words: list[bytes]) -> None:
    assert split_args(b" \t".join(words)) == words


junk = st.lists(st.sampled_from([b"*", b"$", b"\r", b"\n", b"\r\n", b"0", b"1", b"2", b"-",
                                 b"a", b" ", b'"', b"'", b"\\", b"x", b"*1\r\n", b"$1\r\n"]),
                max_size=40).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(junk, st.lists(st.integers(min_value=0), max_size=10))
def test_any_bytes_parse_the_same_whatever_the_cuts(data: bytes, cuts: list[int]) -> None:
    caps = {"max_bulk": 3, "max_multibulk": 3, "max_inline": 6}
    whole = feed_pieces([data], **caps)
    assert feed_pieces(random_cuts(data, cuts), **caps) == whole
    assert all(isinstance(item, list) for item in whole[:-1])


# -- replies: exact bytes -----------------------------------------------------------

REPLIES = [
    pytest.param(lambda r3: OK, b"+OK\r\n", b"+OK\r\n", id="OK"),
    pytest.param(lambda r3: PONG, b"+PONG\r\n", b"+PONG\r\n", id="PONG"),
    pytest.param(lambda r3: QUEUED, b"+QUEUED\r\n", b"+QUEUED\r\n", id="QUEUED"),
    pytest.param(lambda r3: simple("OK"), b"+OK\r\n", b"+OK\r\n", id="simple-str"),
    pytest.param(lambda r3: simple(b"caf\xc3\xa9"), b"+caf\xc3\xa9\r\n", b"+caf\xc3\xa9\r\n",
                 id="simple-bytes"),
    pytest.param(lambda r3: simple("a\r\nb"), b"+a  b\r\n", b"+a  b\r\n", id="simple-crlf"),
    pytest.param(lambda r3: error("ERR unknown command 'x'"), b"-ERR unknown command 'x'\r\n",
                 b"-ERR unknown command 'x'\r\n", id="error"),
    pytest.param(lambda r3: error("WRONGTYPE Operation\r\nagainst\n"),
                 b"-WRONGTYPE Operation  against\r\n", b"-WRONGTYPE Operation  against\r\n",
                 id="error-crlf"),
    pytest.param(lambda r3: integer(0), b":0\r\n", b":0\r\n", id="integer-0"),
    pytest.param(lambda r3: integer(-42), b":-42\r\n", b":-42\r\n", id="integer-negative"),
    pytest.param(lambda r3: bulk(b""), b"$0\r\n\r\n", b"$0\r\n\r\n", id="bulk-empty"),
    pytest.param(lambda r3: bulk(b"a\r\nb"), b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n",
                 id="bulk"),
    pytest.param(null, b"$-1\r\n", b"_\r\n", id="null"),
    pytest.param(null_array, b"*-1\r\n", b"_\r\n", id="null-array"),
    pytest.param(lambda r3: array([]), b"*0\r\n", b"*0\r\n", id="array-empty"),
    pytest.param(lambda r3: array([integer(1), bulk(b"x"), null(r3)]),
                 b"*3\r\n:1\r\n$1\r\nx\r\n$-1\r\n", b"*3\r\n:1\r\n$1\r\nx\r\n_\r\n", id="array"),
    pytest.param(lambda r3: map_reply([(bulk(b"a"), integer(1)), (bulk(b"b"), integer(2))], r3),
                 b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n",
                 b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n", id="map"),
    pytest.param(lambda r3: map_reply([], r3), b"*0\r\n", b"%0\r\n", id="map-empty"),
    pytest.param(lambda r3: set_reply([bulk(b"a")], r3), b"*1\r\n$1\r\na\r\n",
                 b"~1\r\n$1\r\na\r\n", id="set"),
    pytest.param(lambda r3: double(1.5, r3), b"$3\r\n1.5\r\n", b",1.5\r\n", id="double"),
    pytest.param(lambda r3: double(0.1, r3), b"$19\r\n0.10000000000000001\r\n",
                 b",0.10000000000000001\r\n", id="double-17g"),
    pytest.param(lambda r3: double(3.0, r3), b"$1\r\n3\r\n", b",3\r\n", id="double-whole"),
    pytest.param(lambda r3: double(1e300, r3), b"$23\r\n1.0000000000000001e+300\r\n",
                 b",1.0000000000000001e+300\r\n", id="double-exponent"),
    pytest.param(lambda r3: double(math.inf, r3), b"$3\r\ninf\r\n", b",inf\r\n", id="inf"),
    pytest.param(lambda r3: double(-math.inf, r3), b"$4\r\n-inf\r\n", b",-inf\r\n", id="-inf"),
    pytest.param(lambda r3: double(math.nan, r3), b"$3\r\nnan\r\n", b",nan\r\n", id="nan"),
    pytest.param(lambda r3: boolean(True, r3), b":1\r\n", b"#t\r\n", id="true"),
    pytest.param(lambda r3: boolean(False, r3), b":0\r\n", b"#f\r\n", id="false"),
    pytest.param(lambda r3: verbatim(b"hello", r3), b"$5\r\nhello\r\n",
                 b"=9\r\ntxt:hello\r\n", id="verbatim"),
    pytest.param(lambda r3: verbatim(b"# x", r3, b"mkd"), b"$3\r\n# x\r\n",
                 b"=7\r\nmkd:# x\r\n", id="verbatim-markdown"),
]


@pytest.mark.parametrize(("encode", "resp2", "resp3"), REPLIES)
def test_reply_bytes_are_exact(encode: Callable[[bool], bytes], resp2: bytes,
                               resp3: bytes) -> None:
    assert encode(False) == resp2
    assert encode(True) == resp3


def test_constants_are_redis_shared_replies() -> None:
    assert (NULL_BULK, NULL_ARRAY) == (b"$-1\r\n", b"*-1\r\n")


def test_verbatim_format_must_be_three_bytes() -> None:
    with pytest.raises(ValueError, match="three bytes"):
        verbatim(b"x", True, b"text")


NESTED = {b"k": [1, None, True, 2.5, "ok", b"v", (b"t",)], b"e": {}}


def test_encode_value_nests_in_resp3() -> None:
    assert encode_value(NESTED, True) == (
        b"%2\r\n$1\r\nk\r\n*7\r\n:1\r\n_\r\n#t\r\n,2.5\r\n+ok\r\n$1\r\nv\r\n*1\r\n$1\r\nt\r\n"
        b"$1\r\ne\r\n%0\r\n")


def test_encode_value_nests_in_resp2() -> None:
    assert encode_value(NESTED, False) == (
        b"*4\r\n$1\r\nk\r\n*7\r\n:1\r\n$-1\r\n:1\r\n$3\r\n2.5\r\n+ok\r\n$1\r\nv\r\n"
        b"*1\r\n$1\r\nt\r\n$1\r\ne\r\n*0\r\n")


def test_encode_value_sets_and_buffers() -> None:
    assert encode_value({b"a"}, True) == b"~1\r\n$1\r\na\r\n"
    assert encode_value(frozenset(), False) == b"*0\r\n"
    assert encode_value(bytearray(b"ab"), True) == b"$2\r\nab\r\n"


def test_encode_value_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(TypeError, match="object"):
        encode_value([object()], True)


# -- replies read back by a real client ---------------------------------------------

Decoder = Callable[[bytes, bool], object]


def client_decoders() -> dict[str, Decoder]:
    """The reply parsers of the Redis clients importable here: hiredis, redis-py."""
    decoders: dict[str, Decoder] = {}
    try:
        hiredis = importlib.import_module("hiredis")
    except ImportError:
        pass
    else:
        def with_hiredis(data: bytes, resp3: bool) -> object:
            reader = hiredis.Reader()
            reader.feed(data)
            return reader.gets()
        decoders["hiredis"] = with_hiredis
    try:
        parsers = importlib.import_module("redis._parsers")
        buffers = importlib.import_module("redis._parsers.socket")
    except ImportError:
        pass
    else:
        def with_redis_py(data: bytes, resp3: bool) -> object:
            ours, theirs = socket.socketpair()
            with ours, theirs:
                reader = (parsers._RESP3Parser if resp3 else parsers._RESP2Parser)(65536)
                reader._buffer = buffers.SocketBuffer(theirs, 65536, 5.0)
                ours.sendall(data)
                return reader.read_response(disable_decoding=True)
        decoders["redis-py"] = with_redis_py
    return decoders


def as_read(value: object, resp3: bool) -> object:
    """What a client reads for `value` sent with `encode_value`."""
    if isinstance(value, bool):
        return value if resp3 else int(value)
    if isinstance(value, float) and not resp3:
        return b"%.17g" % value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list | tuple):
        return [as_read(item, resp3) for item in value]
    if isinstance(value, dict):
        pairs = [(as_read(k, resp3), as_read(v, resp3)) for k, v in value.items()]
        return dict(pairs) if resp3 else [x for pair in pairs for x in pair]
    return value


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(10 if depth < 3 else 7)
    scalars: list[Callable[[], object]] = [
        lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-2**63, 2**63 - 1),
        lambda: rng.choice([0.1, -2.5, 1e300, 5e-324, math.inf, -math.inf, rng.random()]),
        lambda: rng.randbytes(rng.randrange(20)), lambda: f"status-{rng.randrange(99)}",
        lambda: b"\r\n\x00" * rng.randrange(3)]
    if kind < 7:
        return scalars[kind]()
    if kind < 9:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.randbytes(4): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_replies_read_back_by_a_redis_client_parser() -> None:
    decoders = client_decoders()
    if not decoders:
        reason = ("NO REDIS CLIENT PARSER: neither hiredis nor redis-py is importable, so the "
                  "encoders were not checked against a real client")
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    rng = random.Random(7)
    values = [random_value(rng) for _ in range(300)]
    for name, decode in decoders.items():
        for resp3 in (False, True):
            for value in values:
                got = decode(encode_value(value, resp3), resp3)
                assert got == as_read(value, resp3), (name, resp3, value)
            assert decode(set_reply([bulk(b"a")], resp3), resp3) == [b"a"]
            assert decode(verbatim(b"hi", resp3), resp3) == b"hi"
            assert decode(null_array(resp3), resp3) is None
            assert math.isnan(float(decode(double(math.nan, resp3), resp3)))  # type: ignore[arg-type]
            err = decode(error("ERR boom\r\nnow"), resp3)
            assert isinstance(err, Exception) and "boom  now" in str(err), (name, err)
