"""Redis-protocol scenarios walkv must answer as Redis 7 does, and the kit to replay them.

Theory of operation. A *scenario* is a named sequence of *steps*; a step is one
command (a tuple of byte-string arguments) sent on one of the scenario's connections
(most use one, the WATCH ones a second), with a *mode* saying how its reply is
compared. Every scenario starts with FLUSHALL and ends with a PING on each of its
connections, so a server that sends one reply too many or too few is caught at the
end of the scenario even when every compared reply matched. The RESP3 variants
(``<name>_resp3``) are the same steps after ``HELLO 3`` on every connection.

The runner (``run_scenario``) sends each step as a RESP multibulk and reads exactly
one reply with the small sans-IO reader below; a SCAN step is iterated until its
cursor is 0 and keeps every reply of the iteration. What a step got back is an
*observation*: a tuple of raw reply bytes (one, or one per SCAN call). ``compare``
judges two observations of the same step by its mode:

- ``exact``: the reply bytes are equal;
- ``unordered``: both are aggregates of the same type holding the same multiset (KEYS);
- ``scan``: the iterations found the same set of keys (cursors differ between servers);
- ``ttl``: both integers, equal if either is -1 or -2, else within 2 s (2000 ms for PTTL);
- ``type``: only the first byte (the RESP type) is equal (RANDOMKEY, HELLO, TIME);
- ``skip``: sent, reply ignored.

Wall-clock time enters only through symbolic arguments, resolved when the step is
sent and stored unresolved in the transcripts: ``{now+100s}`` (unix seconds),
``{now_ms+100000}`` (unix milliseconds), ``{past}`` (1: a second or a millisecond
after the epoch). Absolute deadlines that a reply echoes (EXPIRETIME) use fixed
timestamps far in the future instead, so they compare exactly.

Transcripts (``tests/fixtures/redis7/<scenario>.json``, written by
``python -m tools.record_redis``) hold each step's arguments, mode and raw replies as
latin-1 strings; ``load_transcript`` refuses one whose steps no longer match the
scenario.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "redis7"
"""Where the recorded Redis 7 transcripts live, one JSON file per scenario."""

UNKNOWN_TO_WALKV = ("LPUSH", "RPUSH", "LRANGE", "HSET", "HGET", "SADD", "ZADD")
"""Redis commands the scenarios send expecting ``unknown command``; the reference
redis-server is started with them renamed away so that it answers as walkv does."""

REDIS_DATABASES = 1
"""walkv has one database; the reference runs with ``--databases 1`` (SELECT 1 fails)."""

FAR_FUTURE_S = 4102444800
"""2100-01-01T00:00:00Z: an absolute deadline that EXPIRETIME can echo exactly."""

# -- the wire: commands out, replies in ---------------------------------------------


class ProtocolError(Exception):
    """Raised when a server sends bytes that are not a RESP2/RESP3 reply."""


def encode_command(args: Sequence[bytes]) -> bytes:
    """One command as a RESP multibulk (array of bulk strings)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


@dataclass(frozen=True)
class Reply:
    """One parsed reply: ``kind`` is its type byte, ``raw`` the bytes it came in.

    ``data`` is the line of a simple type or the contents of a blob; ``items`` are the
    elements of an aggregate (a map's keys and values alternate).
    """

    kind: bytes
    raw: bytes
    data: bytes = b""
    items: tuple[Reply, ...] = ()


_LINE_KINDS = frozenset(b"+-:_,#(")
_BLOB_KINDS = frozenset(b"$!=")
_AGGREGATE_WIDTH = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2}


def parse_reply(buf: bytes, start: int = 0) -> tuple[Reply, int] | None:
    """Parse the reply at ``buf[start:]``: ``(reply, end)``, or None if it is incomplete.

    Raises ProtocolError on a type byte or length that RESP does not allow.
    """
    eol = buf.find(b"\r\n", start)
    if eol < 0:
        return None
    kind, header, body = buf[start], buf[start + 1:eol], eol + 2
    if kind in _LINE_KINDS:
        return Reply(bytes([kind]), buf[start:body], header), body
    if kind in _BLOB_KINDS:
        return _parse_blob(buf, start, header, body)
    if kind in _AGGREGATE_WIDTH:
        return _parse_aggregate(buf, start, header, body)
    raise ProtocolError(f"unexpected reply type byte {bytes([kind])!r} at offset {start}")


def _length(header: bytes) -> int:
    try:
        return int(header)
    except ValueError:
        raise ProtocolError(f"bad length {header!r}") from None


def _parse_blob(buf: bytes, start: int, header: bytes, body: int) -> tuple[Reply, int] | None:
    length = _length(header)
    if length < 0:  # RESP2 null bulk string
        return Reply(buf[start:start + 1], buf[start:body]), body
    end = body + length + 2
    if len(buf) < end:
        return None
    if buf[end - 2:end] != b"\r\n":
        raise ProtocolError(f"blob of {length} bytes at offset {start} lacks its CRLF")
    return Reply(buf[start:start + 1], buf[start:end], buf[body:end - 2]), end


def _parse_aggregate(
    buf: bytes, start: int, header: bytes, body: int
) -> tuple[Reply, int] | None:
    count = _length(header)
    items: list[Reply] = []
    pos = body
    for _ in range(max(count, 0) * _AGGREGATE_WIDTH[buf[start]]):
        parsed = parse_reply(buf, pos)
        if parsed is None:
            return None
        items.append(parsed[0])
        pos = parsed[1]
    return Reply(buf[start:start + 1], buf[start:pos], header, tuple(items)), pos


class ReplyReader:
    """Sans-IO: feed bytes as they arrive, take whole replies out in order."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._buf += data

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None until more bytes arrive."""
        parsed = parse_reply(self._buf) if self._buf else None
        if parsed is None:
            return None
        self._buf = self._buf[parsed[1]:]
        return parsed[0]

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of a returned reply."""
        return self._buf


# -- scenarios --------------------------------------------------------------------

Mode = Literal["exact", "unordered", "scan", "ttl", "type", "skip"]
MODES: tuple[Mode, ...] = get_args(Mode)

_TTL_TOLERANCE = {b"TTL": 2, b"PTTL": 2000}
"""How far a remaining time may be off (its unit: seconds, milliseconds) in mode ttl."""

Observation = tuple[bytes, ...]
"""The raw replies one step got: one, or every reply of a SCAN iteration."""


@dataclass(frozen=True)
class Step:
    """One command sent on connection ``conn`` of a scenario, compared by ``mode``."""

    args: tuple[bytes, ...]
    mode: Mode = "exact"
    conn: int = 0

    @property
    def command(self) -> bytes:
        """The command name, upper-cased."""
        return self.args[0].upper() if self.args else b""

    def describe(self) -> str:
        """The step as a reader would type it: ``[conn 1] SET "k" "v"``."""
        shown = " ".join(_show_arg(arg) for arg in self.args)
        prefix = f"[conn {self.conn}] " if self.conn else ""
        return f"{prefix}{shown}  (mode {self.mode})"


def _show_arg(arg: bytes) -> str:
    text = repr(arg)[2:-1]
    return text if len(text) <= 60 else f"{text[:57]}... ({len(arg)} bytes)"


@dataclass(frozen=True)
class Scenario:
    """A named sequence of steps; the first is FLUSHALL, the last ones PINGs."""

    name: str
    steps: tuple[Step, ...]

    @property
    def connections(self) -> int:
        """How many connections the steps use (numbered from 0)."""
        return max(step.conn for step in self.steps) + 1


def cmd(*args: str | bytes, mode: Mode = "exact", conn: int = 0) -> Step:
    """A step; str arguments are sent as UTF-8."""
    raw = tuple(arg.encode() if isinstance(arg, str) else arg for arg in args)
    step = Step(raw, mode, conn)
    _check_mode(step)
    return step


def _check_mode(step: Step) -> None:
    # The modes that loosen the comparison are allowed only where they make sense.
    if step.mode == "ttl" and step.command not in _TTL_TOLERANCE:
        raise ValueError(f"mode ttl is for TTL and PTTL only: {step.describe()}")
    if step.mode == "scan" and (step.command != b"SCAN" or step.args[1:2] != (b"0",)):
        raise ValueError(f"mode scan is for SCAN 0 ... only: {step.describe()}")


def scenario(name: str, *steps: Step, resp3: bool = False) -> list[Scenario]:
    """The scenario ``name`` (FLUSHALL first, a PING per connection last), and with
    ``resp3`` its RESP3 variant ``<name>_resp3``."""
    connections = max(step.conn for step in steps) + 1
    pings = tuple(cmd("PING", conn=conn) for conn in range(connections))
    made = [Scenario(name, (cmd("FLUSHALL"), *steps, *pings))]
    if resp3:
        hellos = tuple(cmd("HELLO", "3", mode="type", conn=c) for c in range(connections))
        made.append(Scenario(f"{name}_resp3", (cmd("FLUSHALL"), *hellos, *steps, *pings)))
    return made


def _ttl(*args: str) -> Step:
    return cmd(*args, mode="ttl")


def _scan(*args: str) -> Step:
    return cmd("SCAN", "0", *args, mode="scan")


LLONG_MAX = "9223372036854775807"
LLONG_MIN = "-9223372036854775808"


def _connection() -> list[Scenario]:
    return [
        *scenario(
            "ping",
            cmd("PING"), cmd("PING", "hello"), cmd("ping", ""), cmd("PiNg", b"\x00\xff"),
            cmd("PING", "a", "b"),
        ),
        *scenario(
            "echo",
            cmd("ECHO", "hi"), cmd("ECHO", ""), cmd("echo", b"\x00\xff\r\n"),
            cmd("ECHO"), cmd("ECHO", "a", "b"),
        ),
        *scenario(
            "select",
            cmd("SELECT", "0"), cmd("SET", "k", "v"), cmd("SELECT", "1"), cmd("SELECT", "-1"),
            cmd("SELECT", "16"), cmd("SELECT", "abc"), cmd("SELECT", "0.5"), cmd("SELECT"),
            cmd("SELECT", "0", "1"), cmd("GET", "k"), cmd("select", "0"), cmd("GET", "k"),
        ),
        *scenario(
            "dbsize",
            cmd("DBSIZE"), cmd("MSET", "a", "1", "b", "2"), cmd("DBSIZE"), cmd("DEL", "a"),
            cmd("DBSIZE"), cmd("DBSIZE", "x"),
        ),
        *scenario(
            "flushall_flushdb",
            cmd("MSET", "a", "1", "b", "2"), cmd("FLUSHALL"), cmd("DBSIZE"),
            cmd("SET", "a", "1"), cmd("FLUSHDB"), cmd("DBSIZE"),
            cmd("SET", "a", "1"), cmd("FLUSHALL", "ASYNC"), cmd("EXISTS", "a"),
            cmd("SET", "a", "1"), cmd("FLUSHALL", "SYNC"), cmd("EXISTS", "a"),
            cmd("SET", "a", "1"), cmd("flushdb", "async"), cmd("EXISTS", "a"),
            cmd("FLUSHDB", "SYNC"), cmd("FLUSHALL", "BOGUS"), cmd("FLUSHALL", "SYNC", "ASYNC"),
            cmd("FLUSHDB", "BOGUS"), cmd("FLUSHDB", "ASYNC", "SYNC"),
        ),
        *scenario(
            "client_name",
            cmd("CLIENT", "GETNAME"), cmd("CLIENT", "SETNAME", "walkv-test"),
            cmd("CLIENT", "GETNAME"), cmd("CLIENT", "SETNAME", "has space"),
            cmd("CLIENT", "SETNAME", "new\nline"), cmd("CLIENT", "SETNAME", "caf\xe9"),
            cmd("CLIENT", "GETNAME"), cmd("CLIENT", "SETNAME", ""), cmd("CLIENT", "GETNAME"),
            cmd("client", "setname", "lower"), cmd("client", "getname"),
            cmd("CLIENT", "SETNAME"), cmd("CLIENT", "SETNAME", "a", "b"),
            cmd("CLIENT", "GETNAME", "x"), cmd("CLIENT"),
            cmd("CLIENT", "SETNAME", "other", conn=1), cmd("CLIENT", "GETNAME"),
            cmd("CLIENT", "GETNAME", conn=1),
            resp3=True,
        ),
        *scenario(
            "hello",
            cmd("HELLO", mode="type"), cmd("HELLO", "2", mode="type"), cmd("GET", "missing"),
            cmd("HELLO", "3", mode="type"), cmd("GET", "missing"), cmd("MGET", "missing"),
            cmd("HELLO", "4"), cmd("GET", "missing"), cmd("HELLO", "1"), cmd("HELLO", "0"),
            cmd("HELLO", "-1"), cmd("HELLO", "abc"), cmd("HELLO", "3", "BOGUS"),
            cmd("HELLO", "3", "SETNAME"), cmd("HELLO", "3", "SETNAME", "bad name"),
            cmd("HELLO", "3", "SETNAME", "hello-name", mode="type"), cmd("CLIENT", "GETNAME"),
            cmd("hello", "2", mode="type"), cmd("GET", "missing"), cmd("MGET", "missing"),
            cmd("HELLO", "3", mode="type", conn=1), cmd("GET", "missing", conn=1),
            cmd("GET", "missing"),
        ),
        *scenario("time", cmd("TIME", mode="type"), cmd("TIME", "x")),
    ]


def _strings() -> list[Scenario]:
    return [
        *scenario(
            "get_set",
            cmd("GET", "k"), cmd("SET", "k", "v"), cmd("GET", "k"), cmd("SET", "k", "v2"),
            cmd("GET", "k"), cmd("SET", "bin", b"\x00\x01\xff\r\n"), cmd("GET", "bin"),
            cmd("SET", "empty", ""), cmd("GET", "empty"), cmd("STRLEN", "empty"),
            cmd("EXISTS", "empty"), cmd("SET", "", "empty key"), cmd("GET", ""),
            cmd("SET", "\u043a\u043b\u044e\u0447", "\u0437\u043d\u0430\u0447"),
            cmd("GET", "\u043a\u043b\u044e\u0447"),
            cmd("SET", "big", "x" * 20000), cmd("GET", "big"),
            cmd("set", "lower", "case"), cmd("get", "lower"),
            cmd("GET"), cmd("GET", "a", "b"), cmd("SET"), cmd("SET", "k"),
            cmd("SET", "k", "v", "BOGUS"), cmd("SET", "k", "v", "EX"),
            cmd("SET", "k", "v", "PERSIST"),
            cmd("GET", "k"),
            resp3=True,
        ),
        *scenario(
            "set_nx_xx",
            cmd("SET", "k", "v", "NX"), cmd("SET", "k", "v2", "NX"), cmd("GET", "k"),
            cmd("SET", "k", "v3", "XX"), cmd("GET", "k"), cmd("SET", "other", "v", "XX"),
            cmd("EXISTS", "other"), cmd("set", "k", "v4", "nx"), cmd("SET", "k", "v5", "xx"),
            cmd("SET", "k", "v", "NX", "XX"), cmd("SET", "k", "v", "XX", "NX"),
            cmd("SET", "k", "v6", "XX", "XX"), cmd("SET", "n", "v", "NX", "NX"), cmd("GET", "k"),
            cmd("GET", "n"),
            resp3=True,
        ),
        *scenario(
            "set_get",
            cmd("SET", "k", "v", "GET"), cmd("SET", "k", "v2", "GET"), cmd("GET", "k"),
            cmd("SET", "k", "v3", "NX", "GET"), cmd("GET", "k"),
            cmd("SET", "new", "v", "NX", "GET"), cmd("GET", "new"),
            cmd("SET", "k", "v4", "XX", "GET"), cmd("SET", "gone", "v", "XX", "GET"),
            cmd("EXISTS", "gone"), cmd("SET", "k", "v5", "GET", "GET"),
            cmd("SET", "k", "v6", "get", "EX", "100"), _ttl("TTL", "k"),
            cmd("SET", "k", "v7", "GET", "KEEPTTL"), _ttl("TTL", "k"), cmd("GET", "k"),
            cmd("SET", "k", "v", "GET", "EX", "0"), cmd("GET", "k"),
            resp3=True,
        ),
        *scenario(
            "set_expire",
            cmd("SET", "k", "v", "EX", "100"), _ttl("TTL", "k"), _ttl("PTTL", "k"),
            cmd("SET", "k", "v", "PX", "100000"), _ttl("PTTL", "k"),
            cmd("SET", "k", "v", "EXAT", "{now+200s}"), _ttl("TTL", "k"),
            cmd("SET", "k", "v", "PXAT", "{now_ms+300000}"), _ttl("PTTL", "k"),
            cmd("SET", "k", "v", "ex", "10", "EX", "400"), _ttl("TTL", "k"),
            cmd("SET", "k", "v"), _ttl("TTL", "k"),
            cmd("SET", "k", "v", "EX", "0"), cmd("SET", "k", "v", "EX", "-1"),
            cmd("SET", "k", "v", "PX", "0"), cmd("SET", "k", "v", "PX", "-100"),
            cmd("SET", "k", "v", "EXAT", "0"), cmd("SET", "k", "v", "PXAT", "-1"),
            cmd("SET", "k", "v", "EX", "abc"), cmd("SET", "k", "v", "EX", "1.5"),
            cmd("SET", "k", "v", "EX", ""), cmd("SET", "k", "v", "EX", "9223372036854775808"),
            cmd("SET", "k", "v", "EX", LLONG_MAX), cmd("SET", "k", "v", "PX", LLONG_MAX),
            cmd("SET", "k", "v", "EXAT", LLONG_MAX), cmd("SET", "k", "v", "PXAT", LLONG_MAX),
            cmd("SET", "k", "v", "EX"), cmd("SET", "k", "v", "EX", "10", "PX", "100"),
            cmd("SET", "k", "v", "PX", "100", "EXAT", "{now+100s}"),
            cmd("SET", "k", "v", "EX", "10", "KEEPTTL"),
            cmd("SET", "k", "v", "KEEPTTL", "EX", "10"), cmd("PEXPIRETIME", "k"),
            cmd("SET", "k", "v", "EXAT", "{past}"), cmd("GET", "k"), cmd("EXISTS", "k"),
            cmd("SET", "k", "v", "PXAT", "{past}"), cmd("EXISTS", "k"),
            cmd("SET", "k", "v", "EX", "100"), cmd("SET", "k", "v2", "KEEPTTL"), _ttl("TTL", "k"),
            cmd("GET", "k"), cmd("SET", "k", "v3"), _ttl("TTL", "k"),
            cmd("SET", "k", "v4", "KEEPTTL"), _ttl("TTL", "k"),
            cmd("SET", "fresh", "v", "KEEPTTL"), _ttl("TTL", "fresh"),
            cmd("SET", "k", "v", "EX", "100", "NX"), cmd("SET", "k", "v", "XX", "PX", "100000"),
            _ttl("PTTL", "k"),
        ),
        *scenario(
            "setnx_setex_psetex",
            cmd("SETNX", "k", "v"), cmd("SETNX", "k", "v2"), cmd("GET", "k"),
            cmd("SETNX", "k"), cmd("SETNX", "k", "v", "x"),
            cmd("SETEX", "k", "100", "v3"), _ttl("TTL", "k"), cmd("GET", "k"),
            cmd("SETEX", "k", "0", "v"), cmd("SETEX", "k", "-5", "v"),
            cmd("SETEX", "k", "abc", "v"), cmd("SETEX", "k", LLONG_MAX, "v"),
            cmd("SETEX", "k", "100"), cmd("SETEX", "k", "100", "v", "x"), cmd("GET", "k"),
            cmd("PSETEX", "p", "100000", "v"), _ttl("PTTL", "p"), cmd("GET", "p"),
            cmd("PSETEX", "p", "0", "v"), cmd("PSETEX", "p", "-1", "v"),
            cmd("PSETEX", "p", "abc", "v"), cmd("PSETEX", "p", LLONG_MAX, "v"),
            cmd("PSETEX", "p", "1"), cmd("SETNX", "k2", ""), cmd("GET", "k2"),
        ),
        *scenario(
            "getset",
            cmd("GETSET", "k", "v"), cmd("GETSET", "k", "v2"), cmd("GET", "k"),
            cmd("SET", "t", "v", "EX", "100"), cmd("GETSET", "t", "v3"), _ttl("TTL", "t"),
            cmd("GETSET", "k"), cmd("GETSET", "k", "v", "x"),
            resp3=True,
        ),
        *scenario(
            "getdel",
            cmd("GETDEL", "k"), cmd("SET", "k", "v", "EX", "100"), cmd("GETDEL", "k"),
            cmd("EXISTS", "k"), cmd("GETDEL", "k"), cmd("GETDEL"), cmd("GETDEL", "a", "b"),
            resp3=True,
        ),
        *scenario(
            "getex",
            cmd("GETEX", "missing"), cmd("SET", "k", "v"), cmd("GETEX", "k"), _ttl("TTL", "k"),
            cmd("GETEX", "k", "EX", "100"), _ttl("TTL", "k"),
            cmd("GETEX", "k", "PX", "200000"), _ttl("PTTL", "k"),
            cmd("GETEX", "k", "EXAT", "{now+300s}"), _ttl("TTL", "k"),
            cmd("GETEX", "k", "PXAT", "{now_ms+400000}"), _ttl("PTTL", "k"),
            cmd("GETEX", "k"), _ttl("TTL", "k"),
            cmd("GETEX", "k", "persist"), _ttl("TTL", "k"), cmd("GETEX", "k", "PERSIST"),
            cmd("GETEX", "k", "EX", "0"), cmd("GETEX", "k", "EX", "-1"),
            cmd("GETEX", "k", "PX", "0"), cmd("GETEX", "k", "EXAT", "0"),
            cmd("GETEX", "k", "EX", "abc"), cmd("GETEX", "k", "EX", LLONG_MAX),
            cmd("GETEX", "k", "EX"), cmd("GETEX", "k", "EX", "10", "PX", "10"),
            cmd("GETEX", "k", "PERSIST", "EX", "10"), cmd("GETEX", "k", "EX", "10", "PERSIST"),
            cmd("GETEX", "k", "BOGUS"), cmd("GETEX", "k", "KEEPTTL"), cmd("GETEX", "k", "NX"),
            cmd("GETEX", "missing", "EX", "100"), cmd("GETEX", "missing", "EX", "0"),
            cmd("GETEX", "missing", "EX", "abc"),
            cmd("GETEX", "missing", "PERSIST"), cmd("EXISTS", "missing"), _ttl("TTL", "k"),
            cmd("GETEX", "k", "EXAT", "{past}"), cmd("EXISTS", "k"), cmd("GETEX"),
            resp3=True,
        ),
        *scenario(
            "mget_mset_msetnx",
            cmd("MSET", "a", "1", "b", "2"), cmd("MGET", "a", "b", "missing", "a"),
            cmd("MGET", "missing"), cmd("MSET", "a", "3"), cmd("GET", "a"),
            cmd("MSET", "x", "1", "x", "2"), cmd("GET", "x"),
            cmd("MSET", "a"), cmd("MSET", "a", "1", "b"), cmd("MSET"), cmd("MGET"),
            cmd("MSETNX", "c", "3", "d", "4"), cmd("MSETNX", "c", "5", "e", "6"),
            cmd("MGET", "c", "d", "e"), cmd("EXISTS", "e"),
            cmd("MSETNX", "f"), cmd("MSETNX", "f", "1", "g"), cmd("MSETNX", "h", "1", "h", "2"),
            cmd("GET", "h"), cmd("SET", "t", "v", "EX", "100"), cmd("MSET", "t", "v2"),
            _ttl("TTL", "t"),
            resp3=True,
        ),
        *scenario(
            "incr_decr",
            cmd("INCR", "n"), cmd("INCR", "n"), cmd("DECR", "n"), cmd("INCRBY", "n", "10"),
            cmd("DECRBY", "n", "5"), cmd("INCRBY", "n", "-10"), cmd("DECRBY", "n", "-4"),
            cmd("GET", "n"), cmd("DECR", "fresh"), cmd("INCRBY", "fresh2", "5"),
            cmd("SET", "s", "abc"), cmd("INCR", "s"), cmd("DECR", "s"), cmd("INCRBY", "s", "1"),
            cmd("SET", "f", "1.5"), cmd("INCR", "f"), cmd("SET", "sp", " 1"), cmd("INCR", "sp"),
            cmd("SET", "lz", "01"), cmd("INCR", "lz"), cmd("SET", "plus", "+1"),
            cmd("INCR", "plus"), cmd("SET", "mz", "-0"), cmd("INCR", "mz"),
            cmd("SET", "neg", "-5"), cmd("INCR", "neg"), cmd("SET", "e", ""), cmd("INCR", "e"),
            cmd("SET", "huge", "12345678901234567890"), cmd("INCR", "huge"),
            cmd("SET", "max", LLONG_MAX), cmd("INCR", "max"), cmd("INCRBY", "max", "0"),
            cmd("SET", "min", LLONG_MIN), cmd("DECR", "min"), cmd("DECRBY", "min", "1"),
            cmd("INCRBY", "min", "-1"), cmd("DECRBY", "n", LLONG_MIN),
            cmd("INCRBY", "n", "abc"), cmd("INCRBY", "n", "1.5"),
            cmd("INCRBY", "n", "9223372036854775808"), cmd("INCRBY", "n", ""),
            cmd("INCR"), cmd("INCR", "a", "b"), cmd("DECR"), cmd("INCRBY", "n"),
            cmd("DECRBY", "n"), cmd("INCRBY", "n", "1", "2"),
            cmd("SET", "t", "10", "EX", "100"), cmd("INCR", "t"), _ttl("TTL", "t"),
            cmd("GET", "n"),
        ),
        *scenario(
            "incrbyfloat",
            cmd("INCRBYFLOAT", "f", "1.5"), cmd("INCRBYFLOAT", "f", "0.1"),
            cmd("INCRBYFLOAT", "f", "-1.6"), cmd("INCRBYFLOAT", "f", "1e3"),
            cmd("INCRBYFLOAT", "f", "2.5e-3"), cmd("GET", "f"),
            cmd("SET", "x", "0.1"), cmd("INCRBYFLOAT", "x", "0.2"),
            cmd("SET", "i", "10"), cmd("INCRBYFLOAT", "i", "0.5"), cmd("INCRBYFLOAT", "i", "5"),
            cmd("INCRBYFLOAT", "i", "-15.5"), cmd("INCRBYFLOAT", "g", "3.0e3"),
            cmd("INCRBYFLOAT", "big", "12345678901234567"),
            cmd("SET", "s", "abc"), cmd("INCRBYFLOAT", "s", "1"),
            cmd("INCRBYFLOAT", "f", "abc"), cmd("INCRBYFLOAT", "f", ""),
            cmd("INCRBYFLOAT", "f", " 1"), cmd("INCRBYFLOAT", "f", "nan"),
            cmd("INCRBYFLOAT", "f", "inf"), cmd("INCRBYFLOAT", "f", "-inf"), cmd("GET", "f"),
            cmd("SET", "t", "1", "EX", "100"), cmd("INCRBYFLOAT", "t", "1"), _ttl("TTL", "t"),
            cmd("INCRBYFLOAT", "f"), cmd("INCRBYFLOAT", "f", "1", "2"),
        ),
        *scenario(
            "append_strlen",
            cmd("APPEND", "k", "abc"), cmd("APPEND", "k", "def"), cmd("GET", "k"),
            cmd("STRLEN", "k"), cmd("STRLEN", "missing"), cmd("APPEND", "k", ""),
            cmd("APPEND", "new", ""), cmd("EXISTS", "new"), cmd("STRLEN", "new"),
            cmd("APPEND", "bin", b"\x00\xff"), cmd("STRLEN", "bin"),
            cmd("SET", "u", "\u043a\u043b\u044e\u0447"), cmd("STRLEN", "u"),
            cmd("SET", "num", "10"), cmd("APPEND", "num", "5"), cmd("INCR", "num"),
            cmd("SET", "t", "v", "EX", "100"), cmd("APPEND", "t", "x"), _ttl("TTL", "t"),
            cmd("APPEND", "k"), cmd("APPEND", "k", "a", "b"), cmd("STRLEN"),
            cmd("STRLEN", "a", "b"),
        ),
        *scenario(
            "getrange",
            cmd("SET", "k", "Hello World"), cmd("GETRANGE", "k", "0", "4"),
            cmd("GETRANGE", "k", "-5", "-1"), cmd("GETRANGE", "k", "0", "-1"),
            cmd("GETRANGE", "k", "5", "2"), cmd("GETRANGE", "k", "100", "200"),
            cmd("GETRANGE", "k", "-100", "-1"), cmd("GETRANGE", "k", "0", "-100"),
            cmd("GETRANGE", "k", "-1", "-5"), cmd("GETRANGE", "k", "3", "3"),
            cmd("GETRANGE", "k", "0", LLONG_MAX), cmd("GETRANGE", "k", LLONG_MIN, "2"),
            cmd("GETRANGE", "missing", "0", "-1"), cmd("SET", "e", ""),
            cmd("GETRANGE", "e", "0", "-1"), cmd("GETRANGE", "k", "a", "1"),
            cmd("GETRANGE", "k", "0", "1.5"), cmd("GETRANGE", "k", "0"),
            cmd("GETRANGE", "k", "0", "1", "2"),
        ),
        *scenario(
            "setrange",
            cmd("SET", "k", "Hello World"), cmd("SETRANGE", "k", "6", "Redis"), cmd("GET", "k"),
            cmd("SETRANGE", "k", "20", "x"), cmd("GET", "k"),
            cmd("SETRANGE", "missing", "3", "abc"), cmd("GET", "missing"),
            cmd("SETRANGE", "k", "-1", "x"), cmd("SETRANGE", "k", "abc", "x"),
            cmd("SETRANGE", "none", "0", ""), cmd("SETRANGE", "none", "5", ""),
            cmd("EXISTS", "none"), cmd("SETRANGE", "k", "0", ""),
            cmd("SETRANGE", "k", "536870912", "x"), cmd("SETRANGE", "none", "536870912", "x"),
            cmd("SETRANGE", "k", "536870912", ""), cmd("SETRANGE", "k", "-1", ""),
            cmd("SET", "t", "v", "EX", "100"), cmd("SETRANGE", "t", "0", "w"), _ttl("TTL", "t"),
            cmd("SETRANGE", "k", "0"), cmd("SETRANGE", "k", "0", "a", "b"), cmd("GET", "k"),
        ),
    ]


def _keys() -> list[Scenario]:
    words = [
        "hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h?llo", "other",
        "\u043a\u043b\u044e\u0447", "HELLO",
    ]
    pairs = [part for word in words for part in (word, "1")]
    many = [part for i in range(20) for part in (f"user:{i}", "u")]
    many += [part for i in range(12) for part in (f"item:{i}", "i")]
    return [
        *scenario(
            "del_unlink_exists",
            cmd("MSET", "a", "1", "b", "2", "c", "3"), cmd("DEL", "a", "b", "missing"),
            cmd("DEL", "a"), cmd("EXISTS", "a", "b", "c"), cmd("EXISTS", "c", "c", "c"),
            cmd("EXISTS", "missing"), cmd("SET", "d", "4"), cmd("DEL", "d", "d"),
            cmd("UNLINK", "c"), cmd("UNLINK", "c", "missing"), cmd("SET", "e", "5"),
            cmd("unlink", "e", "e", "x"), cmd("DBSIZE"), cmd("DEL"), cmd("UNLINK"),
            cmd("EXISTS"),
        ),
        *scenario(
            "type",
            cmd("SET", "k", "v"), cmd("TYPE", "k"), cmd("TYPE", "missing"),
            cmd("SET", "n", "1"), cmd("INCR", "n"), cmd("TYPE", "n"), cmd("SET", "e", ""),
            cmd("TYPE", "e"), cmd("TYPE"), cmd("TYPE", "a", "b"),
        ),
        *scenario(
            "keys",
            cmd("KEYS", "*"), cmd("MSET", *pairs), cmd("KEYS", "*", mode="unordered"),
            cmd("KEYS", "h?llo", mode="unordered"), cmd("KEYS", "h*llo", mode="unordered"),
            cmd("KEYS", "h[ae]llo", mode="unordered"), cmd("KEYS", "h[^e]llo", mode="unordered"),
            cmd("KEYS", "h[a-e]llo", mode="unordered"), cmd("KEYS", "h\\*llo"),
            cmd("KEYS", "h\\?llo"), cmd("KEYS", "*llo*", mode="unordered"),
            cmd("KEYS", "\u043a*"), cmd("KEYS", "nomatch*"), cmd("KEYS", ""),
            cmd("KEYS", "hello"), cmd("KEYS", "HEL*"), cmd("KEYS", "h[", mode="unordered"),
            cmd("KEYS"), cmd("KEYS", "a", "b"),
        ),
        *scenario(
            "scan",
            cmd("SCAN", "0"), cmd("MSET", *many), _scan(), _scan("COUNT", "5"),
            _scan("MATCH", "user:*"), _scan("MATCH", "user:1*", "COUNT", "3"),
            _scan("match", "item:?", "count", "1000"), _scan("TYPE", "string"),
            _scan("TYPE", "STRING"), _scan("TYPE", "list"), _scan("TYPE", "bogus"),
            _scan("MATCH", "nomatch*"), _scan("COUNT", "1", "MATCH", "item:1*", "TYPE", "string"),
            cmd("SCAN", "0", "COUNT", "0"), cmd("SCAN", "0", "COUNT", "-1"),
            cmd("SCAN", "0", "COUNT", "abc"), cmd("SCAN", "abc"),
            cmd("SCAN", "1.5"), cmd("SCAN", "0", "MATCH"), cmd("SCAN", "0", "COUNT"),
            cmd("SCAN", "0", "TYPE"), cmd("SCAN", "0", "BOGUS", "x"), cmd("SCAN"),
            cmd("FLUSHALL"), cmd("SCAN", "0"), cmd("SCAN", "0", "MATCH", "*"),
        ),
        *scenario(
            "randomkey",
            cmd("RANDOMKEY"), cmd("SET", "only", "v"), cmd("RANDOMKEY"),
            cmd("MSET", "a", "1", "b", "2"), cmd("RANDOMKEY", mode="type"),
            cmd("RANDOMKEY", "x"),
            resp3=True,
        ),
        *scenario(
            "rename_renamenx",
            cmd("SET", "a", "1"), cmd("RENAME", "a", "b"), cmd("GET", "a"), cmd("GET", "b"),
            cmd("RENAME", "missing", "x"), cmd("EXISTS", "x"), cmd("RENAME", "b", "b"),
            cmd("GET", "b"), cmd("SET", "c", "3"), cmd("RENAME", "b", "c"), cmd("GET", "c"),
            cmd("EXISTS", "b"), cmd("SET", "d", "4"), cmd("RENAMENX", "c", "d"),
            cmd("MGET", "c", "d"), cmd("RENAMENX", "c", "e"), cmd("MGET", "c", "e"),
            cmd("RENAMENX", "missing", "f"), cmd("RENAMENX", "e", "e"),
            cmd("RENAMENX", "missing", "missing"), cmd("RENAME", "missing", "missing"),
            cmd("SET", "t", "v", "EX", "100"), cmd("RENAME", "t", "t2"), _ttl("TTL", "t2"),
            _ttl("TTL", "t"), cmd("SET", "w", "v", "EX", "100"), cmd("SET", "x", "v"),
            cmd("RENAME", "x", "w"), _ttl("TTL", "w"), cmd("RENAME", "a"),
            cmd("RENAME", "a", "b", "c"), cmd("RENAMENX", "a"),
        ),
    ]


def _expiry() -> list[Scenario]:
    return [
        *scenario(
            "expire_ttl_persist",
            cmd("SET", "k", "v"), _ttl("TTL", "k"), _ttl("PTTL", "k"),
            cmd("EXPIRE", "k", "100"), _ttl("TTL", "k"), _ttl("PTTL", "k"),
            cmd("EXPIRE", "missing", "100"), _ttl("TTL", "missing"), _ttl("PTTL", "missing"),
            cmd("PERSIST", "k"), _ttl("TTL", "k"), cmd("PERSIST", "k"),
            cmd("PERSIST", "missing"), cmd("PEXPIRE", "k", "100000"), _ttl("PTTL", "k"),
            _ttl("TTL", "k"), cmd("PEXPIRE", "k", "1500"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "0"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("EXPIRE", "k", "-10"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("PEXPIRE", "k", "-1"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("EXPIRE", "k", "abc"), cmd("EXPIRE", "k", "1.5"), cmd("EXPIRE", "k", ""),
            cmd("EXPIRE", "k", LLONG_MAX), cmd("EXPIRE", "k", LLONG_MIN),
            cmd("PEXPIRE", "k", LLONG_MAX), cmd("PEXPIRE", "k", LLONG_MIN), cmd("EXISTS", "k"),
            cmd("SET", "k", "v"), cmd("EXPIRE", "k", "9223372036854775"),
            cmd("EXPIRE", "k", "9223372036854"), _ttl("TTL", "k"), cmd("EXPIRE", "k"),
            cmd("EXPIRE"), cmd("PEXPIRE", "k"), cmd("TTL"), cmd("TTL", "a", "b"), cmd("PTTL"),
            cmd("PERSIST"), cmd("PERSIST", "a", "b"),
        ),
        *scenario(
            "expire_options",
            cmd("SET", "k", "v"), cmd("EXPIRE", "k", "100", "XX"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "100", "GT"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "100", "LT"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "50", "NX"), cmd("EXPIRE", "k", "200", "GT"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "100", "GT"), cmd("EXPIRE", "k", "50", "LT"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "60", "LT"), cmd("EXPIRE", "k", "70", "XX"), _ttl("TTL", "k"),
            cmd("PERSIST", "k"), cmd("EXPIRE", "k", "80", "nx"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "90", "XX", "GT"), _ttl("TTL", "k"),
            cmd("EXPIRE", "k", "100", "NX", "XX"), cmd("EXPIRE", "k", "100", "NX", "GT"),
            cmd("EXPIRE", "k", "100", "NX", "LT"), cmd("EXPIRE", "k", "100", "GT", "LT"),
            cmd("EXPIRE", "k", "100", "XX", "NX"), cmd("EXPIRE", "k", "100", "BOGUS"),
            cmd("EXPIRE", "k", "100", "NX", "BOGUS"), cmd("EXPIRE", "k", "100", "GT", "GT"),
            cmd("EXPIRE", "missing", "100", "NX"), cmd("EXPIRE", "missing", "100", "XX"),
            cmd("PEXPIRE", "k", "500000", "GT"), _ttl("PTTL", "k"),
            cmd("PEXPIRE", "k", "100000", "GT"), cmd("PEXPIRE", "k", "100000", "XX", "LT"),
            _ttl("PTTL", "k"), cmd("PEXPIRE", "k", "100", "NX", "XX"),
            cmd("EXPIRE", "k", "-1", "GT"), cmd("EXISTS", "k"),
            cmd("EXPIRE", "k", "abc", "NX"), cmd("SET", "k", "v", "EX", "100"),
            cmd("EXPIRE", "k", "-1", "LT"), cmd("EXISTS", "k"),
        ),
        *scenario(
            "expireat_expiretime",
            cmd("SET", "k", "v"), cmd("EXPIREAT", "k", "{now+100s}"), _ttl("TTL", "k"),
            cmd("PEXPIREAT", "k", "{now_ms+200000}"), _ttl("PTTL", "k"),
            cmd("EXPIREAT", "k", str(FAR_FUTURE_S)), cmd("EXPIRETIME", "k"),
            cmd("PEXPIRETIME", "k"), cmd("PEXPIREAT", "k", f"{FAR_FUTURE_S}123"),
            cmd("PEXPIRETIME", "k"), cmd("EXPIRETIME", "k"),
            cmd("PEXPIREAT", "k", f"{FAR_FUTURE_S}600"), cmd("EXPIRETIME", "k"),
            cmd("SET", "p", "v"), cmd("EXPIRETIME", "p"), cmd("PEXPIRETIME", "p"),
            cmd("EXPIRETIME", "missing"), cmd("PEXPIRETIME", "missing"),
            cmd("EXPIREAT", "missing", "{now+100s}"), cmd("PEXPIREAT", "missing", "{past}"),
            cmd("EXPIREAT", "k", "{past}"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("PEXPIREAT", "k", "{past}"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("EXPIREAT", "k", "0"), cmd("EXISTS", "k"), cmd("SET", "k", "v"),
            cmd("EXPIREAT", "k", "abc"), cmd("EXPIREAT", "k", LLONG_MAX),
            cmd("PEXPIREAT", "k", LLONG_MAX), cmd("PEXPIRETIME", "k"),
            cmd("EXPIREAT", "k", "{now+300s}", "NX"), cmd("PEXPIRETIME", "k"),
            cmd("EXPIREAT", "k", "{now+100s}", "GT"), cmd("EXPIREAT", "k", "{now+100s}", "LT"),
            _ttl("TTL", "k"), cmd("PEXPIREAT", "k", "{now_ms+500000}", "XX"), _ttl("PTTL", "k"),
            cmd("PEXPIREAT", "k", "{now_ms+500000}", "NX"),
            cmd("EXPIREAT", "k", "{now+100s}", "GT", "LT"),
            cmd("PEXPIREAT", "k", "{now_ms+100000}", "NX", "XX"),
            cmd("EXPIREAT", "k", "{now+100s}", "BOGUS"), cmd("EXPIREAT", "k"),
            cmd("PEXPIREAT", "k"), cmd("EXPIRETIME"), cmd("PEXPIRETIME", "a", "b"),
        ),
    ]


def _transactions() -> list[Scenario]:
    return [
        *scenario(
            "multi_exec",
            cmd("MULTI"), cmd("SET", "a", "1"), cmd("INCR", "a"), cmd("GET", "a"),
            cmd("GET", "missing"), cmd("MGET", "a", "missing"), cmd("EXEC"),
            cmd("MULTI"), cmd("EXEC"), cmd("MULTI"), cmd("PING"), cmd("ECHO", "x"),
            cmd("DBSIZE"), cmd("UNWATCH"), cmd("EXEC"),
            cmd("MULTI"), cmd("FLUSHALL"), cmd("SET", "z", "1"), cmd("exec"), cmd("KEYS", "*"),
            cmd("DISCARD"), cmd("EXEC"), cmd("MULTI"), cmd("SET", "b", "1"), cmd("DISCARD"),
            cmd("GET", "b"), cmd("MULTI"), cmd("MULTI"), cmd("SET", "c", "1"), cmd("EXEC"),
            cmd("MULTI"), cmd("WATCH", "a"), cmd("EXEC"), cmd("MULTI", "x"),
            cmd("EXEC", "x"), cmd("DISCARD", "x"),
            resp3=True,
        ),
        *scenario(
            "multi_execabort",
            cmd("MULTI"), cmd("SET", "a", "1"), cmd("SET", "b"), cmd("EXEC"), cmd("GET", "a"),
            cmd("MULTI"), cmd("SET", "a", "1"), cmd("FOOBAR", "x"), cmd("EXEC"),
            cmd("EXISTS", "a"), cmd("MULTI"), cmd("lpush", "l", "x"), cmd("SET", "a", "1"),
            cmd("EXEC"), cmd("MULTI"), cmd("GET"), cmd("DISCARD"), cmd("EXISTS", "a"),
            cmd("MULTI"), cmd("SET", "a", "1"), cmd("EXEC", "x"), cmd("EXEC"),
        ),
        *scenario(
            "multi_runtime_error",
            cmd("SET", "s", "abc"), cmd("MULTI"), cmd("INCR", "s"), cmd("SET", "t", "1"),
            cmd("INCRBYFLOAT", "s", "1"), cmd("SET", "u", "v", "BOGUS"), cmd("SELECT", "1"),
            cmd("SET", "k", "v", "EX", "0"), cmd("RENAME", "missing", "x"), cmd("GET", "t"),
            cmd("EXEC"), cmd("MGET", "s", "t", "u", "k"),
            resp3=True,
        ),
        *scenario(
            "watch_conflict",
            cmd("SET", "k", "v"), cmd("WATCH", "k"), cmd("SET", "k", "other", conn=1),
            cmd("MULTI"), cmd("SET", "k", "mine"), cmd("EXEC"), cmd("GET", "k"),
            resp3=True,
        ),
        *scenario(
            "watch_own_write_and_unwatch",
            cmd("SET", "a", "0"), cmd("WATCH", "a"), cmd("MULTI"), cmd("SET", "a", "1"),
            cmd("EXEC"), cmd("SET", "a", "2", conn=1), cmd("MULTI"), cmd("SET", "a", "3"),
            cmd("EXEC"), cmd("WATCH", "a"), cmd("SET", "a", "4"), cmd("MULTI"),
            cmd("SET", "a", "5"), cmd("EXEC"), cmd("GET", "a"), cmd("WATCH", "a"),
            cmd("SET", "a", "6", conn=1), cmd("UNWATCH"), cmd("MULTI"), cmd("SET", "a", "7"),
            cmd("EXEC"), cmd("WATCH", "a"), cmd("MULTI"), cmd("DISCARD"),
            cmd("SET", "a", "8", conn=1), cmd("MULTI"), cmd("SET", "a", "9"), cmd("EXEC"),
            cmd("GET", "a"), cmd("WATCH"), cmd("UNWATCH", "x"),
            resp3=True,
        ),
        *scenario(
            "watch_what_counts_as_a_change",
            cmd("SET", "a", "0"), cmd("WATCH", "missing"), cmd("SET", "missing", "1", conn=1),
            cmd("MULTI"), cmd("GET", "missing"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("GET", "a", conn=1), cmd("MULTI"), cmd("GET", "a"),
            cmd("EXEC"),
            cmd("WATCH", "a", "b"), cmd("SET", "b", "x", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("SET", "a", "0", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("SET", "other", "x", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("EXPIRE", "a", "100", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("PERSIST", "a", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("PERSIST", "a", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("APPEND", "a", "", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("DEL", "a", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("WATCH", "a"), cmd("DEL", "a", conn=1), cmd("MULTI"), cmd("EXEC"),
            cmd("SET", "a", "0"), cmd("WATCH", "a"), cmd("FLUSHALL", conn=1), cmd("MULTI"),
            cmd("EXEC"), cmd("WATCH", "gone"), cmd("FLUSHALL", conn=1), cmd("MULTI"),
            cmd("EXEC"), cmd("SET", "r", "1"), cmd("WATCH", "r2"),
            cmd("RENAME", "r", "r2", conn=1), cmd("MULTI"), cmd("EXEC"),
            resp3=True,
        ),
    ]


def _unknown() -> list[Scenario]:
    return [
        *scenario(
            "unknown_commands",
            cmd("FOOBAR"), cmd("FOOBAR", "a", "b"), cmd("foobar", "x" * 200),
            cmd("FOO", *[f"arg{i}" for i in range(40)]), cmd("lpush", "list", "a", "b"),
            cmd("LPUSH", "list", "a"), cmd("rpush", "l", "x"), cmd("LRANGE", "l", "0", "-1"),
            cmd("HSET", "h", "f", "v"), cmd("hget", "h", "f"), cmd("SADD", "s", "m"),
            cmd("ZADD", "z", "1", "m"), cmd("\u043a\u043e\u043c", "x"), cmd(""),
            cmd("FOO", "a\r\nb", "\xff"), cmd("DBSIZE"),
        ),
    ]


SCENARIOS: tuple[Scenario, ...] = (
    *_connection(), *_strings(), *_keys(), *_expiry(), *_transactions(), *_unknown(),
)
"""Every scenario, in a stable order; names are unique."""

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS), "scenario names must be unique"


# -- time symbols -----------------------------------------------------------------

_SYMBOL = re.compile(rb"\{(?P<unit>now|now_ms)(?P<delta>[+-]\d+)s?\}|\{past\}")


def resolve(arg: bytes, now: float) -> bytes:
    """``arg`` with a time symbol (the whole argument) replaced by its value at ``now``."""
    match = _SYMBOL.fullmatch(arg)
    if match is None:
        return arg
    if match.group("unit") is None:
        return b"1"
    scale = 1000 if match.group("unit") == b"now_ms" else 1
    return b"%d" % (int(now * scale) + int(match.group("delta")))


# -- running a scenario against a server ------------------------------------------

REPLY_TIMEOUT_S = 10.0
"""How long one reply may take (walkv acknowledges writes after an fsync)."""

SCAN_LIMIT = 10_000
"""SCAN calls one step may make before the iteration counts as endless."""


class ScenarioError(Exception):
    """Raised when a server cannot be driven through a scenario (closed, garbage, hang).

    ``index`` is the step that failed (-1: no connection), ``reason`` what happened,
    ``observed`` what the steps before it got.
    """

    def __init__(self, index: int, step: Step, reason: str) -> None:
        super().__init__(f"step {index}: {step.describe()}: {reason}")
        self.index = index
        self.step = step
        self.reason = reason
        self.observed: list[Observation] = []


class Client:
    """One blocking connection: send a command, read exactly one reply."""

    def __init__(self, address: tuple[str, int], timeout: float = REPLY_TIMEOUT_S) -> None:
        self._sock = socket.create_connection(address, timeout=timeout)
        self._reader = ReplyReader()

    def call(self, args: Sequence[bytes]) -> Reply:
        """Send ``args`` as one command and return its reply.

        Raises OSError (socket.timeout included) or ProtocolError; EOF is
        ConnectionError.
        """
        self._sock.sendall(encode_command(args))
        while (reply := self._reader.next_reply()) is None:
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed by the server; pending {self._reader.pending!r}")
            self._reader.feed(data)
        return reply

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


def run_scenario(
    scenario: Scenario,
    address: tuple[str, int],
    *,
    clock: Callable[[], float] = time.time,
    timeout: float = REPLY_TIMEOUT_S,
) -> list[Observation]:
    """Drive ``scenario`` through the server at ``address``; one observation per step.

    Raises ScenarioError if the server stops answering properly.
    """
    clients: list[Client] = []
    observed: list[Observation] = []
    try:
        clients.extend(Client(address, timeout) for _ in range(scenario.connections))
        for index, step in enumerate(scenario.steps):
            observed.append(_observe(clients[step.conn], step, index, clock))
    except OSError as exc:
        raise ScenarioError(-1, scenario.steps[0], f"cannot connect: {exc}") from exc
    except ScenarioError as exc:
        exc.observed = observed
        raise
    finally:
        for client in clients:
            client.close()
    return observed


def _observe(client: Client, step: Step, index: int, clock: Callable[[], float]) -> Observation:
    try:
        if step.mode == "scan":
            return _iterate_scan(client, step, index, clock)
        return (client.call([resolve(arg, clock()) for arg in step.args]).raw,)
    except (OSError, ProtocolError) as exc:
        raise ScenarioError(index, step, f"{type(exc).__name__}: {exc}") from exc


def _iterate_scan(
    client: Client, step: Step, index: int, clock: Callable[[], float]
) -> Observation:
    replies: list[bytes] = []
    cursor = b"0"
    while not replies or cursor != b"0":
        if len(replies) >= SCAN_LIMIT:
            raise ScenarioError(index, step, f"cursor not back at 0 after {SCAN_LIMIT} calls")
        args = [step.args[0], cursor, *(resolve(arg, clock()) for arg in step.args[2:])]
        reply = client.call(args)
        replies.append(reply.raw)
        page = _scan_page(reply)
        if page is None:  # an error or a malformed page ends the iteration; compared as is
            break
        cursor = page[0]
    return tuple(replies)


def _scan_page(reply: Reply) -> tuple[bytes, list[bytes]] | None:
    """``(cursor, keys)`` of a well-formed SCAN reply, else None."""
    if reply.kind != b"*" or len(reply.items) != 2:
        return None
    cursor, keys = reply.items
    if cursor.kind != b"$" or keys.kind != b"*" or any(k.kind != b"$" for k in keys.items):
        return None
    return cursor.data, [key.data for key in keys.items]


# -- comparing two observations of one step ---------------------------------------

def compare(step: Step, expected: Observation, actual: Observation) -> str | None:
    """None if ``actual`` agrees with ``expected`` under the step's mode, else why not."""
    if step.mode == "skip":
        return None
    if step.mode == "scan":
        return _compare_scan(expected, actual)
    if len(expected) != 1 or len(actual) != 1:
        return f"expected 1 reply each, got {len(expected)} and {len(actual)}"
    want, got = expected[0], actual[0]
    if step.mode == "exact" or want == got:
        return None if want == got else "replies differ"
    if step.mode == "type":
        return None if want[:1] == got[:1] else f"reply types differ: {want[:1]!r} {got[:1]!r}"
    if step.mode == "ttl":
        return _compare_ttl(_TTL_TOLERANCE[step.command], want, got)
    return _compare_unordered(want, got)


def _parse_whole(raw: bytes) -> Reply | None:
    try:
        parsed = parse_reply(raw)
    except ProtocolError:
        return None
    return parsed[0] if parsed is not None and parsed[1] == len(raw) else None


def _compare_ttl(tolerance: int, want: bytes, got: bytes) -> str | None:
    a, b = _parse_whole(want), _parse_whole(got)
    if a is None or b is None or a.kind != b":" or b.kind != b":":
        return "replies differ (not both integers)"
    x, y = int(a.data), int(b.data)
    if x < 0 or y < 0:
        return None if x == y else "replies differ (-1: no expiry, -2: no key)"
    return None if abs(x - y) <= tolerance else f"differ by more than {tolerance}"


def _compare_unordered(want: bytes, got: bytes) -> str | None:
    a, b = _parse_whole(want), _parse_whole(got)
    if a is None or b is None or a.kind != b.kind or a.kind not in (b"*", b"~"):
        return "replies differ"  # an error, or not an array: only equal bytes agree
    if Counter(item.raw for item in a.items) != Counter(item.raw for item in b.items):
        return "replies differ as multisets"
    return None


def _compare_scan(expected: Observation, actual: Observation) -> str | None:
    want, got = _scan_keys(expected), _scan_keys(actual)
    if want is None or got is None:
        # An error (or something that is not a SCAN page) must match exactly.
        return None if expected == actual else "replies differ (not a full SCAN iteration)"
    if want != got:
        missing, extra = sorted(want - got), sorted(got - want)
        return f"SCAN found different keys: missing {missing!r}, extra {extra!r}"
    return None


def _scan_keys(observation: Observation) -> set[bytes] | None:
    keys: set[bytes] = set()
    for raw in observation:
        reply = _parse_whole(raw)
        page = None if reply is None else _scan_page(reply)
        if page is None:
            return None
        keys.update(page[1])
    return keys


# -- transcripts --------------------------------------------------------------------


RERECORD = "re-record with `.venv/bin/python -m tools.record_redis`"


class TranscriptError(Exception):
    """Raised when a transcript is missing, malformed, or no longer fits its scenario."""


def _text(raw: bytes) -> str:
    return raw.decode("latin-1")


def _raw(text: str) -> bytes:
    return text.encode("latin-1")


def transcript_path(name: str, directory: Path = FIXTURES) -> Path:
    """Where the transcript of scenario ``name`` lives."""
    return directory / f"{name}.json"


def dump_transcript(
    scenario: Scenario, redis_version: str, observations: Sequence[Observation]
) -> str:
    """The JSON text of a transcript: stable, one line per step, so diffs read well."""
    steps = [
        json.dumps({
            "conn": step.conn,
            "args": [_text(arg) for arg in step.args],
            "mode": step.mode,
            "replies": [_text(raw) for raw in observation],
        })
        for step, observation in zip(scenario.steps, observations, strict=True)
    ]
    head = json.dumps({"scenario": scenario.name, "redis_version": redis_version})
    return head[:-1] + ', "steps": [\n ' + ",\n ".join(steps) + "\n]}\n"


@dataclass(frozen=True)
class Transcript:
    """What Redis answered to one scenario, as recorded."""

    redis_version: str
    observations: tuple[Observation, ...]
    path: Path


def load_transcript(scenario: Scenario, directory: Path = FIXTURES) -> Transcript:
    """The recorded replies of ``scenario``.

    Raises TranscriptError if the file is missing or its steps differ from the
    scenario's (the scenarios changed and nobody re-recorded).
    """
    path = transcript_path(scenario.name, directory)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        recorded = [_recorded_step(entry) for entry in document["steps"]]
        version = str(document["redis_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TranscriptError(f"{path}: {type(exc).__name__}: {exc}") from exc
    _check_steps(path, scenario.steps, [step for step, _ in recorded])
    return Transcript(version, tuple(observation for _, observation in recorded), path)


def _recorded_step(entry: dict[str, object]) -> tuple[Step, Observation]:
    args, replies = entry["args"], entry["replies"]
    modes = [mode for mode in MODES if mode == entry["mode"]]
    if not isinstance(args, list) or not isinstance(replies, list) or not modes:
        raise TypeError(f"malformed step {entry!r}")
    step = Step(tuple(_raw(arg) for arg in args), modes[0], int(str(entry["conn"])))
    return step, tuple(_raw(reply) for reply in replies)


def _check_steps(path: Path, want: Sequence[Step], got: Sequence[Step]) -> None:
    for index, (ours, theirs) in enumerate(zip(want, got, strict=False)):
        if ours != theirs:
            raise TranscriptError(
                f"{path}: step {index} is {theirs.describe()}, the scenario has "
                f"{ours.describe()}; {RERECORD}")
    if len(want) != len(got):
        raise TranscriptError(
            f"{path}: {len(got)} steps, the scenario has {len(want)}; {RERECORD}")
