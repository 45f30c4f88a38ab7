"""Sans-IO HTTP/1.1 request codec: bytes in, typed events out; responses as bytes.

No sockets and no event loop here (the model is python-hyper/h11). The connection
feeds whatever it received to `RequestParser.feed` and acts on the events in order:

- `ContinueExpected`: write `CONTINUE_RESPONSE` now, the client waits for it.
- `Request`: one complete request; answer it (pipelined answers go out in order).
  Its `conditions` carry the `If-Match` and `If-None-Match` fields, the only request
  headers the router needs besides the framing ones.
- `ProtocolError`: answer it (`server/http/replies.py`) and close. The parser is dead.

Theory of operation. httptools (llhttp) does the HTTP parsing and de-chunking; this
module adds the caps a client must not be able to exceed (STYLE.md practice 12):

- Body: `max_body_bytes` is checked against `Content-Length` when the headers are
  complete, before any body byte is buffered, and against the running total of a
  chunked body.
- Header section (request line and headers): llhttp has no limit of its own and
  httptools buffers a header line until it ends, so the size is tracked two ways.
  Inside the callbacks, `_head` counts the section seen so far (target, names,
  values, and the framing bytes a well-formed client writes around them);
  exceeding the cap aborts the parse at once. At the end of every `feed` that
  stops inside a header section, `_head_upper` is an upper bound that also covers
  a header line httptools is still buffering: all of the fed bytes when the section
  began in an earlier call, otherwise the bytes after the section's start
  (`_head_start`, a lower bound of its offset built from the byte counts of the
  earlier messages in the same call). So an oversized header costs at most the cap
  plus one `feed` of memory, whether it arrives whole or in pieces. (Bytes the
  counts cannot see, such as chunk-size lines, only make the upper bound looser; a
  legitimate client never comes near it.)

Raising `_Abort` from a callback makes httptools stop and raise
`HttpParserCallbackError`; the `ProtocolError` that says why is kept in `_error`.
Any other exception from a callback is a bug in this module and is re-raised, not
turned into a 400.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, NoReturn, TypeAlias

import httptools

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

# Bytes of a request line besides method and target: two spaces, b"HTTP/1.1", CRLF;
# plus the CRLF that ends the header section.
_REQUEST_LINE_FRAMING: Final = 12
_SECTION_END: Final = 2
# Bytes of a header line besides name and value: b": " and CRLF, as clients write it.
# A line without the optional space is counted one byte long, which is harmless.
_HEADER_LINE_FRAMING: Final = 4


# -- events -------------------------------------------------------------------------
# Request is built once per request, so it is a plain (non-frozen) slots dataclass:
# frozen dataclasses cost twice as much to construct. Treat it as immutable.


@dataclass(slots=True, frozen=True)
class Conditions:
    """The precondition fields of a request, as sent (RFC 9110 section 13.1).

    None when the field is absent; several lines of one field are joined with ", ",
    as RFC 9110 section 5.3 allows. The entity tags are parsed by
    `server/http/preconditions.py`, for the requests that have them.
    """

    if_match: bytes | None = None
    if_none_match: bytes | None = None


@dataclass(slots=True)
class Request:
    """A complete request. `target` is the raw request-target (path and query bytes).

    `keep_alive` is False for HTTP/1.0 without `Connection: keep-alive` and for
    `Connection: close`; the parser then ignores everything after this request.
    `conditions` is None unless the request has `If-Match` or `If-None-Match`.
    """

    method: bytes
    target: bytes
    body: bytes
    keep_alive: bool
    conditions: Conditions | None = None


@dataclass(slots=True, frozen=True)
class ContinueExpected:
    """The client sent `Expect: 100-continue` and waits before sending its body."""


@dataclass(slots=True, frozen=True)
class ProtocolError:
    """The bytes cannot be served: answer `status` with text `body`, then close."""

    status: int
    body: bytes


Event: TypeAlias = Request | ContinueExpected | ProtocolError

CONTINUE_EXPECTED: Final = ContinueExpected()
MALFORMED: Final = ProtocolError(400, b"malformed request\n")
BODY_TOO_LARGE: Final = ProtocolError(413, b"value too large\n")
HEADER_TOO_LARGE: Final = ProtocolError(431, b"request header fields too large\n")


class _Abort(Exception):
    """Raised from a parser callback to stop httptools; the reason is in `_error`."""


# -- parser -------------------------------------------------------------------------


class RequestParser:
    """Turns the bytes of one connection into `Event`s, enforcing size caps.

    After a `ProtocolError`, or after a `Request` with `keep_alive` False, the parser
    is finished and `feed` returns [] for anything more.

    This is the per-request hot path: an ordinary request costs four short callbacks
    and one `Request`. Headers that need attention are recognised by the length of
    their name before anything else is done with them.
    """

    __slots__ = (
        "_began_here",
        "_body_parts",
        "_body_size",
        "_conditions",
        "_content_length",
        "_done",
        "_error",
        "_events",
        "_flags",
        "_head",
        "_head_start",
        "_head_upper",
        "_in_head",
        "_max_body",
        "_max_head",
        "_method",
        "_parser",
        "_seen",
        "_target",
    )

    def __init__(self, *, max_header_bytes: int, max_body_bytes: int) -> None:
        self._max_head = max_header_bytes
        self._max_body = max_body_bytes
        self._events: list[Event] = []
        self._done = False
        self._error: ProtocolError | None = None
        # Byte accounting for the header cap; see the module docstring. A message
        # begins where the previous one completed (or at the first byte).
        self._seen = 0
        self._began_here = True
        self._in_head = True
        self._head = 0
        self._head_start = 0
        self._head_upper = 0
        # The request being parsed.
        self._method = b""
        self._target = b""
        self._flags = 0
        self._content_length = 0
        self._conditions: Conditions | None = None
        self._body_parts: list[bytes] = []
        self._body_size = 0
        # httptools looks the callbacks up by name on this object, once; a namespace
        # keeps them off the public surface of RequestParser.
        callbacks = types.SimpleNamespace(
            on_url=self._on_url,
            on_header=self._on_header,
            on_headers_complete=self._on_headers_complete,
            on_body=self._on_body,
            on_message_complete=self._on_message_complete,
        )
        self._parser = httptools.HttpRequestParser(callbacks)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Parse `data` (any amount, any split) and return the events it completes."""
        if self._done:
            return []
        self._seen = 0
        self._began_here = False
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            _reraise_bug(exc)
            self._fail_parse()
        else:
            if self._in_head:  # inline: this runs once per received chunk
                fed = len(data)
                upper = fed - self._head_start if self._began_here else self._head_upper + fed
                self._head_upper = upper
                if upper > self._max_head:
                    self._fail(HEADER_TOO_LARGE)
        events = self._events
        self._events = []
        return events

    # -- failure ----------------------------------------------------------------

    def _abort(self, error: ProtocolError) -> NoReturn:
        self._error = error
        raise _Abort(error.body)

    def _fail_parse(self) -> None:
        # llhttp refuses bytes after a `Connection: close` request; that request was
        # already delivered and the connection is closing, so it is not an error.
        if not self._done:
            self._fail(self._error or MALFORMED)

    def _fail(self, error: ProtocolError) -> None:
        self._events.append(error)
        self._done = True

    # -- httptools callbacks ----------------------------------------------------

    def _on_url(self, part: bytes) -> None:
        self._target += part  # b"" + part is part itself: no copy in the usual case
        n = len(part)
        self._seen += n
        self._head += n
        if self._head > self._max_head:
            self._abort(HEADER_TOO_LARGE)

    def _on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)
        size = n + len(value) + _HEADER_LINE_FRAMING
        self._head += size
        if self._began_here:  # else part of this line was fed by an earlier call
            self._seen += size
        if self._head > self._max_head:
            self._abort(HEADER_TOO_LARGE)
        if n in _NOTABLE_NAME_LENGTHS:
            if n == 14 and name.lower() == b"content-length":  # on every PUT: inline
                try:
                    self._content_length = int(value)
                except ValueError:  # llhttp checked the digits; still malformed, not a crash
                    raise _Abort("bad Content-Length") from None
                self._flags |= _NOTABLE
            else:
                self._notable_header(name.lower(), value)

    def _notable_header(self, name: bytes, value: bytes) -> None:
        if name == b"transfer-encoding":
            self._flags |= _CHUNKED  # llhttp rejects any coding that does not end in chunked
        elif name == b"expect":
            if value.strip().lower() == b"100-continue":
                self._flags |= _EXPECT_CONTINUE
            return
        elif name == b"upgrade":
            self._flags |= _UPGRADE
        elif name in {b"if-match", b"if-none-match"}:
            self._add_condition(name, value)
            return
        else:
            return
        self._flags |= _NOTABLE

    def _add_condition(self, name: bytes, value: bytes) -> None:
        self._flags |= _CONDITIONAL
        old = self._conditions or _NO_CONDITIONS
        if name == b"if-match":
            self._conditions = Conditions(_joined(old.if_match, value), old.if_none_match)
        else:
            self._conditions = Conditions(old.if_match, _joined(old.if_none_match, value))

    def _on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        self._method = method = parser.get_method()
        framing = len(method) + _REQUEST_LINE_FRAMING + _SECTION_END
        self._head += framing
        if self._began_here:
            self._seen += framing
        if self._head > self._max_head:
            self._abort(HEADER_TOO_LARGE)
        if self._flags or method == b"CONNECT":
            if self._flags == _NOTABLE:  # only a Content-Length: every PUT
                if self._content_length > self._max_body:
                    self._abort(BODY_TOO_LARGE)
            else:
                self._check_notable(method)

    def _check_notable(self, method: bytes) -> None:
        """The rare requests: upgrades, declared bodies, Expect: 100-continue."""
        flags = self._flags
        if (flags & _UPGRADE or method == b"CONNECT") and self._parser.should_upgrade():
            self._abort(MALFORMED)  # Upgrade and CONNECT: not spoken here
        if self._content_length > self._max_body:
            self._abort(BODY_TOO_LARGE)
        if flags & _EXPECT_CONTINUE and self._body_follows():
            self._events.append(CONTINUE_EXPECTED)

    def _body_follows(self) -> bool:
        # RFC 9110 section 10.1.1: never send 100 Continue to an HTTP/1.0 client.
        has_body = self._content_length > 0 or bool(self._flags & _CHUNKED)
        return has_body and self._parser.get_http_version() != "1.0"

    def _on_body(self, part: bytes) -> None:
        n = len(part)
        self._seen += n
        self._body_size += n
        if self._body_size > self._max_body:
            self._abort(BODY_TOO_LARGE)
        self._body_parts.append(part)

    def _on_message_complete(self) -> None:
        parts = self._body_parts
        if parts:
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            parts.clear()
            self._body_size = 0
        else:
            body = b""
        keep_alive = self._parser.should_keep_alive()
        self._events.append(
            Request(self._method, self._target, body, keep_alive, self._conditions))
        if not keep_alive:
            self._done = True
        # The next message begins right here.
        self._target = b""
        self._head = 0
        self._in_head = True
        self._began_here = True
        self._head_start = self._seen
        self._head_upper = 0
        if self._flags:
            self._flags = 0
            self._content_length = 0
            self._conditions = None


# Header names that need attention, recognised by length before anything else:
# expect (6), upgrade (7), if-match (8), if-none-match (13), content-length (14),
# transfer-encoding (17).
_NOTABLE_NAME_LENGTHS: Final = frozenset((6, 7, 8, 13, 14, 17))
_NOTABLE: Final = 1
_CHUNKED: Final = 2
_EXPECT_CONTINUE: Final = 4
_UPGRADE: Final = 8
_CONDITIONAL: Final = 16
"""A precondition field was seen: only `_conditions` needs resetting, nothing checking."""
_NO_CONDITIONS: Final = Conditions()


def _joined(old: bytes | None, value: bytes) -> bytes:
    """A field's value after one more line of it (RFC 9110 section 5.3: a list)."""
    value = value.strip(b" \t")
    return value if old is None else old + b", " + value


def _reraise_bug(exc: BaseException) -> None:
    """httptools wraps whatever a callback raised; only `_Abort` is expected."""
    cause = exc.__context__
    if cause is not None and not isinstance(cause, _Abort):
        raise cause


# -- responses ----------------------------------------------------------------------

_REASONS: Final[dict[int, bytes]] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}

Headers: TypeAlias = tuple[tuple[bytes, bytes], ...]


def response_head(
    status: int,
    content_length: int,
    *,
    content_type: bytes | None = None,
    keep_alive: bool = True,
    headers: Headers = (),
) -> bytes:
    """Status line and header section (ending in the blank line) of a response."""
    reason = _REASONS.get(status, b"")
    parts = [b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, reason, content_length)]
    if content_type is not None:
        parts.append(b"Content-Type: " + content_type + b"\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.extend(name + b": " + value + b"\r\n" for name, value in headers)
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_response(
    status: int,
    body: bytes = b"",
    *,
    content_type: bytes | None = None,
    keep_alive: bool = True,
    headers: Headers = (),
) -> bytes:
    """A whole response."""
    head = response_head(
        status, len(body), content_type=content_type, keep_alive=keep_alive, headers=headers
    )
    return head + body
