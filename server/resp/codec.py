"""Sans-IO Redis protocol codec: request bytes in, argument lists out; replies as bytes.

No sockets and no event loop here. The connection feeds whatever it received to
`RespParser.feed` and acts on what comes back, in order:

- a `list[bytes]`: one command, its name and arguments as the client sent them;
- a `ProtocolError`: write `ProtocolError.reply()` and close. The parser is dead.

The request grammar and the error texts are Redis 7.0's (networking.c:
processInputBuffer, processInlineBuffer, processMultibulkBuffer; sds.c: sdssplitargs;
util.c: string2ll):

    request   = multibulk | inline                 (the first byte decides: "*" or not)
    multibulk = "*" count CR X, then count times: "$" length CR X <length bytes> X X
    inline    = <bytes up to LF, less one CR before it>, split by `split_args`

X is any byte: a client writes LF after CR and CRLF after a bulk, but Redis checks
none of them, and neither does this parser. A count of zero or less is a request
without a command (skipped), and so is a blank inline line. `count` and `length`
are string2ll integers: an optional "-", then "0" or digits without a leading zero.

Theory of operation. Each `feed` parses its bytes, joined to what an earlier one left
incomplete, with `bytes.find` and slices from an offset; what is still incomplete at
the end is kept once per call, in one of two forms:

- An incomplete line (an inline request, a count, a bulk length): kept in `_line`, a
  bytearray later bytes are appended to. `_scan` remembers how far the search for
  the line's end got, so a line that trickles in costs linear time.
- An incomplete bulk argument: its length is known, so later bytes are collected in
  `_parts` untouched until the bulk and its CRLF are all there, then joined once. A
  value of megabytes arriving in many reads is copied twice, not once per read.

Caps (STYLE.md practice 12): a line longer than `max_inline` is refused, as Redis
refuses one (PROTO_INLINE_MAX_SIZE) with a message naming what the line was. Redis
looks at the size only when a read leaves more than the cap buffered without the
line's end, so its verdict on a line a little over the cap depends on how the bytes
were cut into reads; here the length of the line decides (the bytes before its CR or
LF, or all of them while that is missing), and the same bytes get the same answer
however they are split. `max_bulk` is Redis's proto-max-bulk-len. `max_multibulk`
defaults to Redis 6's 1024 * 1024 (Redis 7.0 allows up to INT_MAX arguments).

One deliberate difference, for bytes no client sends: a NUL byte is an ordinary
byte. Redis looks for line ends with strchr, which stops at NUL, so a line with a
NUL in it waits there until the cap refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

_CR: Final = 13
_LF: Final = 10
_STAR: Final = 42
_DOLLAR: Final = 36
_MINUS: Final = 45
_ZERO: Final = 48
_LLONG_MIN: Final = -(2**63)
_LLONG_MAX: Final = 2**63 - 1
_LONG_STR_SIZE: Final = 21
"""string2ll refuses a text this long or longer."""


Command: TypeAlias = list[bytes]
"""A command as sent: its name, then its arguments."""


@dataclass(slots=True, frozen=True)
class ProtocolError:
    """The request bytes break the protocol: reply, then close the connection.

    `message` is Redis's text after "-ERR ", such as "Protocol error: invalid bulk
    length". A request byte quoted in it is decoded with "surrogateescape", which
    `error` undoes, so the reply carries the byte as Redis would.
    """

    message: str

    def reply(self) -> bytes:
        """The error reply to write before closing."""
        return error("ERR " + self.message)


Parsed: TypeAlias = Command | ProtocolError

INLINE_TOO_BIG: Final = ProtocolError("Protocol error: too big inline request")
UNBALANCED_QUOTES: Final = ProtocolError("Protocol error: unbalanced quotes in request")
MBULK_COUNT_TOO_BIG: Final = ProtocolError("Protocol error: too big mbulk count string")
INVALID_MULTIBULK_LENGTH: Final = ProtocolError("Protocol error: invalid multibulk length")
BULK_COUNT_TOO_BIG: Final = ProtocolError("Protocol error: too big bulk count string")
INVALID_BULK_LENGTH: Final = ProtocolError("Protocol error: invalid bulk length")


def expected_dollar(byte: int) -> ProtocolError:
    """The error for a bulk that does not begin with "$" but with `byte`."""
    # Redis prints the byte with %c, then maps CR and LF to spaces (addReplyErrorFormat).
    char = " " if byte in (_CR, _LF) else bytes((byte,)).decode("utf-8", "surrogateescape")
    return ProtocolError(f"Protocol error: expected '$', got '{char}'")


# -- parser -------------------------------------------------------------------------


class RespParser:
    """Turns the bytes of one connection into commands, enforcing size caps.

    After a `ProtocolError` the parser is finished and `feed` returns [] for anything
    more. See the module docstring for the grammar and what is kept between calls.
    """

    __slots__ = (
        "_after",
        "_argv",
        "_bulk",
        "_dead",
        "_left",
        "_line",
        "_max_bulk",
        "_max_inline",
        "_max_multibulk",
        "_parts",
        "_parts_size",
        "_scan",
        "_terminator",
    )

    def __init__(self, *, max_bulk: int, max_multibulk: int = 1024 * 1024,
                 max_inline: int = 64 * 1024) -> None:
        self._max_bulk = max_bulk
        self._max_multibulk = max_multibulk
        self._max_inline = max_inline
        self._dead = False
        # The multibulk being read: its arguments so far, how many are still to come
        # (counting an incomplete one).
        self._argv: Command = []
        self._left = 0
        # An incomplete line; the byte that ends it and how many bytes must follow
        # that one (the unchecked LF after a CR); where the search for it goes on.
        self._line = bytearray()
        self._terminator = b"\n"
        self._after = 0
        self._scan = 0
        # An incomplete bulk argument: its length (-1: none), its bytes so far.
        self._bulk = -1
        self._parts: list[bytes] = []
        self._parts_size = 0

    def feed(self, data: bytes) -> list[Parsed]:
        """Parse `data` (any amount, split anywhere) and return what it completes."""
        if self._dead:
            return []
        out: list[Parsed] = []
        if self._bulk >= 0:
            pos = self._fill_bulk(data, out)
            if pos >= 0:
                self._parse(data, pos, out)
        elif self._line:
            line = self._line
            line += data
            if self._line_ready(line):
                buf = bytes(line)
                line.clear()
                self._parse(buf, 0, out)
        else:
            self._parse(data, 0, out)
        return out

    def _parse(self, buf: bytes, pos: int, out: list[Parsed]) -> None:
        end = len(buf)
        while 0 <= pos < end:
            if self._left:
                pos = self._read_bulks(buf, pos, out)
            elif buf[pos] == _STAR:
                pos = self._read_count(buf, pos, out)
            else:
                pos = self._read_inline(buf, pos, out)

    # -- the three kinds of request element; each returns where the next begins,
    # or -1 when it kept the rest of `buf` or failed ------------------------------

    def _read_count(self, buf: bytes, pos: int, out: list[Parsed]) -> int:
        cr = buf.find(b"\r", pos)
        if cr < 0 or cr + 1 >= len(buf) or cr - pos > self._max_inline:
            return self._stall(buf, pos, cr, b"\r", MBULK_COUNT_TOO_BIG, out)
        count = _string2ll(buf[pos + 1 : cr])
        if count is None or count > self._max_multibulk:
            return self._fail(INVALID_MULTIBULK_LENGTH, out)
        if count > 0:
            self._left = count
        return cr + 2

    def _read_bulks(self, buf: bytes, pos: int, out: list[Parsed]) -> int:
        """The bulks of the current multibulk: the hot loop of a pipeline."""
        end = len(buf)
        argv = self._argv
        left = self._left
        max_line = self._max_inline
        while left:
            cr = buf.find(b"\r", pos)
            if cr < 0 or cr + 1 >= end or cr - pos > max_line:
                self._left = left
                return self._stall(buf, pos, cr, b"\r", BULK_COUNT_TOO_BIG, out)
            if buf[pos] != _DOLLAR:
                return self._fail(expected_dollar(buf[pos]), out)
            size = _string2ll(buf[pos + 1 : cr])
            if size is None or size < 0 or size > self._max_bulk:
                return self._fail(INVALID_BULK_LENGTH, out)
            start = cr + 2
            pos = start + size + 2
            if pos > end:
                self._left = left
                return self._keep_bulk(buf, start, size)
            argv.append(buf[start : start + size])
            left -= 1
        self._left = 0
        self._argv = []
        out.append(argv)
        return pos

    def _read_inline(self, buf: bytes, pos: int, out: list[Parsed]) -> int:
        lf = buf.find(b"\n", pos)
        if lf < 0 or lf - pos > self._max_inline:
            return self._stall(buf, pos, lf, b"\n", INLINE_TOO_BIG, out)
        stop = lf - 1 if lf > pos and buf[lf - 1] == _CR else lf
        args = split_args(buf[pos:stop])
        if args is None:
            return self._fail(UNBALANCED_QUOTES, out)
        if args:
            out.append(args)
        return lf + 1

    # -- what is kept between calls ---------------------------------------------------

    def _stall(self, buf: bytes, pos: int, found: int, terminator: bytes,
               too_big: ProtocolError, out: list[Parsed]) -> int:
        """The line at `pos` is incomplete (keep it) or too long (fail)."""
        stop = len(buf) if found < 0 else found
        if stop - pos > self._max_inline:
            return self._fail(too_big, out)
        self._line = bytearray(buf[pos:])
        self._terminator = terminator
        self._after = 1 if terminator == b"\r" else 0
        self._scan = stop - pos
        return -1

    def _line_ready(self, line: bytearray) -> bool:
        """Whether the kept line is complete now, or too long to wait for."""
        found = line.find(self._terminator, self._scan)
        if found < 0:
            self._scan = len(line)
            return len(line) > self._max_inline
        if found + self._after >= len(line):
            self._scan = found
            return found > self._max_inline
        return True

    def _keep_bulk(self, buf: bytes, start: int, size: int) -> int:
        rest = buf[start:]
        self._bulk = size
        self._parts = [rest] if rest else []
        self._parts_size = len(rest)
        return -1

    def _fill_bulk(self, data: bytes, out: list[Parsed]) -> int:
        """Add `data` to the incomplete bulk; once complete, where `data` goes on."""
        have = self._parts_size
        take = self._bulk + 2 - have  # the bytes still missing, CRLF included
        if len(data) < take:
            self._parts.append(data)
            self._parts_size = have + len(data)
            return -1
        parts = self._parts
        if take < 2:  # the bulk is all in `parts`, the CR too
            value = b"".join(parts)[: self._bulk]
        elif parts:
            value = b"".join([*parts, memoryview(data)[: take - 2]])
        else:
            value = data[: take - 2]
        self._bulk = -1
        self._parts = []
        self._parts_size = 0
        self._argv.append(value)
        self._left -= 1
        if not self._left:
            out.append(self._argv)
            self._argv = []
        return take

    def _fail(self, error: ProtocolError, out: list[Parsed]) -> int:
        out.append(error)
        self._dead = True
        self._argv = []
        self._line = bytearray()
        self._parts = []
        return -1


_SMALL: Final = {b"%d" % n: n for n in range(1024)}
"""The lengths most requests use, spelled as string2ll accepts them: looked up first."""


def _string2ll(text: bytes) -> int | None:
    """The integer `text` spells by Redis's string2ll rules, or None.

    An optional "-", then "0" alone or digits without a leading zero; no "+", no
    spaces, fewer than 21 characters, within a signed 64-bit integer.
    """
    known = _SMALL.get(text)
    if known is not None:
        return known
    size = len(text)
    if size == 0 or size >= _LONG_STR_SIZE:
        return None
    digits = text[1:] if text[0] == _MINUS else text
    if not digits.isdigit() or (digits[0] == _ZERO and size > 1):
        return None
    value = int(text)
    return value if _LLONG_MIN <= value <= _LLONG_MAX else None


# -- inline requests: sdssplitargs ------------------------------------------------

_SPACE: Final = frozenset(b" \t\n\r\x0b\x0c")
"""C's isspace: skipped between arguments, and what must follow a closing quote."""
_TOKEN_END: Final = frozenset(b" \t\n\r")
"""What ends an unquoted argument (not the vertical tab or form feed: sdssplitargs)."""
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_DQUOTE: Final = 34
_SQUOTE: Final = 39
_BACKSLASH: Final = 92
_X: Final = 120
_END: Final = -1
"""Stands for the end of the line (the NUL that ends a C string)."""


def split_args(line: bytes) -> list[bytes] | None:
    """The arguments of an inline request, split like Redis's sdssplitargs; None if
    its quotes are unbalanced or a closing quote is followed by other than a space.

    Arguments are separated by whitespace. In "double quotes" the escapes \\n \\r \\t
    \\b \\a and \\xHH are understood and a backslash takes any other byte literally; in
    'single quotes' only \\' is an escape. A quote may open inside an argument
    (a"b c" is one argument), but must close at its end.
    """
    if b'"' in line or b"'" in line or b"\x0b" in line or b"\x0c" in line:
        return _split_quoted(line)
    return line.split()  # the same, for the usual line: bytes.split uses C's isspace


def _split_quoted(line: bytes) -> list[bytes] | None:
    args: list[bytes] = []
    n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        i = _read_token(line, i, args)
        if i < 0:
            return None


def _read_token(line: bytes, i: int, args: list[bytes]) -> int:
    """Append the argument at `i`; return where it ends, or -1 if it is malformed."""
    n = len(line)
    current = bytearray()
    quote = 0
    while True:
        c = line[i] if i < n else _END
        if quote == _DQUOTE:
            if c == _BACKSLASH and i + 3 < n and line[i + 1] == _X \
                    and line[i + 2] in _HEX and line[i + 3] in _HEX:
                current.append(int(line[i + 2 : i + 4], 16))
                i += 3
            elif c == _BACKSLASH and i + 1 < n:
                i += 1
                current.append(_ESCAPES.get(line[i], line[i]))
            elif c == _DQUOTE:
                return _close_quote(line, i, current, args)
            elif c == _END:
                return -1
            else:
                current.append(c)
        elif quote == _SQUOTE:
            if c == _BACKSLASH and i + 1 < n and line[i + 1] == _SQUOTE:
                i += 1
                current.append(_SQUOTE)
            elif c == _SQUOTE:
                return _close_quote(line, i, current, args)
            elif c == _END:
                return -1
            else:
                current.append(c)
        elif c == _END or c in _TOKEN_END:
            args.append(bytes(current))
            return i + 1
        elif c in (_DQUOTE, _SQUOTE):
            quote = c
        else:
            current.append(c)
        i += 1


def _close_quote(line: bytes, i: int, current: bytearray, args: list[bytes]) -> int:
    """A closing quote at `i` ends the argument; a space or the end must follow."""
    if i + 1 < len(line) and line[i + 1] not in _SPACE:
        return -1
    args.append(bytes(current))
    return i + 1


# -- replies ------------------------------------------------------------------------
# Aggregates take their elements already encoded: the caller encodes each element
# with the function for its type, and the hot paths never look at a Python type.

OK: Final = b"+OK\r\n"
PONG: Final = b"+PONG\r\n"
QUEUED: Final = b"+QUEUED\r\n"
NULL_BULK: Final = b"$-1\r\n"
"""RESP2's null (a missing value)."""
NULL_ARRAY: Final = b"*-1\r\n"
"""RESP2's null array (a missing aggregate, as a timed-out BLPOP)."""
NULL3: Final = b"_\r\n"
"""RESP3's one null, for both."""


def simple(s: str | bytes) -> bytes:
    """A simple string, `+s`. A CR or LF in `s` would end the line: each becomes a space."""
    text = s.encode() if isinstance(s, str) else s
    if b"\r" in text or b"\n" in text:
        text = text.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"+%b\r\n" % text


def error(msg: str) -> bytes:
    """An error, `-msg`; `msg` begins with its code ("ERR ...", "WRONGTYPE ...").

    As Redis's addReplyErrorFormat does, CRs and LFs are trimmed from both ends and
    the ones inside become spaces.
    """
    text = msg.strip("\r\n")
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return b"-%b\r\n" % text.encode("utf-8", "surrogateescape")


def integer(n: int) -> bytes:
    """An integer, `:n`."""
    return b":%d\r\n" % n


def bulk(b: bytes) -> bytes:
    """A bulk string: its length, then its bytes."""
    return b"$%d\r\n%b\r\n" % (len(b), b)


def null(resp3: bool) -> bytes:
    """A missing value: RESP2's null bulk, RESP3's null."""
    return NULL3 if resp3 else NULL_BULK


def null_array(resp3: bool) -> bytes:
    """A missing aggregate: RESP2's null array, RESP3's null."""
    return NULL3 if resp3 else NULL_ARRAY


def array(items: Sequence[bytes]) -> bytes:
    """An array of encoded replies."""
    return b"".join([b"*%d\r\n" % len(items), *items])


def map_reply(pairs: Sequence[tuple[bytes, bytes]], resp3: bool) -> bytes:
    """A map of encoded keys and values: RESP3's map, RESP2's flat array of 2n."""
    parts = [b"%%%d\r\n" % len(pairs) if resp3 else b"*%d\r\n" % (2 * len(pairs))]
    for key, value in pairs:
        parts.append(key)
        parts.append(value)
    return b"".join(parts)


def set_reply(items: Sequence[bytes], resp3: bool) -> bytes:
    """A set of encoded replies: RESP3's set, RESP2's array."""
    return b"".join([b"~%d\r\n" % len(items) if resp3 else b"*%d\r\n" % len(items), *items])


def double(x: float, resp3: bool) -> bytes:
    """A double: RESP3's double, RESP2's bulk string of the same text.

    The text is Redis 7.0's addReplyDouble: "%.17g" ("0.10000000000000001"), and
    "inf", "-inf" and "nan" for the values that have no digits.
    """
    text = b"%.17g" % x  # Python formats %g as C does, inf, -inf and nan included
    return b",%b\r\n" % text if resp3 else bulk(text)


def boolean(b: bool, resp3: bool) -> bytes:
    """A boolean: RESP3's #t or #f, RESP2's integer 1 or 0."""
    if resp3:
        return b"#t\r\n" if b else b"#f\r\n"
    return b":1\r\n" if b else b":0\r\n"


def verbatim(text: bytes, resp3: bool, fmt: bytes = b"txt") -> bytes:
    """A verbatim string of format `fmt` ("txt" or "mkd"): RESP2's bulk string.

    RESP3's length counts the format and its colon, four bytes.
    """
    if len(fmt) != 3:
        raise ValueError(f"a verbatim string's format is three bytes, not {fmt!r}")
    if not resp3:
        return bulk(text)
    return b"=%d\r\n%b:%b\r\n" % (len(text) + 4, fmt, text)


def encode_value(obj: object, resp3: bool) -> bytes:
    """Any Python value as a reply, element by element: for the cold paths.

    None is null, bool a boolean, int an integer, float a double, bytes a bulk
    string, str a simple string, list and tuple an array, dict a map, set and
    frozenset a set. Anything else is a TypeError.
    """
    if obj is None:
        return null(resp3)
    if isinstance(obj, bool):  # before int: a bool is an int
        return boolean(obj, resp3)
    if isinstance(obj, int):
        return integer(obj)
    if isinstance(obj, float):
        return double(obj, resp3)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bulk(bytes(obj))
    if isinstance(obj, str):
        return simple(obj)
    if isinstance(obj, (list, tuple)):
        return array([encode_value(item, resp3) for item in obj])
    if isinstance(obj, dict):
        return map_reply([(encode_value(key, resp3), encode_value(value, resp3))
                          for key, value in obj.items()], resp3)
    if isinstance(obj, (set, frozenset)):
        return set_reply([encode_value(item, resp3) for item in obj], resp3)
    raise TypeError(f"no RESP encoding for {type(obj).__name__}")
