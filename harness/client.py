"""The harness's one HTTP/1.1 client: load generation, crash oracles, benchmarks.

Sans-IO at the bottom, in the style the server uses too:

- ``encode_request`` turns a request into bytes; ``ResponseReader`` turns bytes into
  ``Response`` objects with httptools' ``HttpResponseParser`` (llhttp). Neither
  touches a socket, so raw-socket tests use them to check pipelined or
  ``100 Continue`` replies.
- ``frame_reply`` is the cheap alternative for the benchmark's load client: it only
  finds where the first reply in a buffer ends and its status, by hand, because a
  parser with callbacks per header costs more CPU than the servers it measures.

Over sockets:

- ``Connection`` is one keep-alive TCP connection on asyncio (uvloop when the caller
  installed it). Requests may be pipelined: ``send()`` writes at once and returns a
  future for the matching reply, replies complete futures in order. ``KVClient``
  speaks the walkv API over one.
- ``request_once()`` has the shape of the public lsfr harness (Go's net/http): a new
  connection per request, ``Connection: close``, one 15 s timeout over connect,
  request and response. ``request_blocking()`` is the same without an event loop,
  for code that runs in threads (the benchmark's orchestrator).
- ``read_responses()`` reads replies from a raw blocking socket.

The client never sends HEAD, so every response is parsed as carrying its body.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import httptools

from harness.errors import ConnectionClosedError, ProtocolError

REQUEST_TIMEOUT_S = 15.0
"""Go's http.Client timeout in the lsfr harness: connect + request + response."""

REQUEST_ERRORS = (OSError, TimeoutError, ConnectionClosedError, ProtocolError)
"""What a request through this client fails with: refused, reset, timed out, closed
without a reply, or answered with bytes that are not HTTP. The outcome is unknown."""

_BODY_METHODS = frozenset({"PUT", "POST", "PATCH"})


def kv_path(key: str | bytes) -> str:
    """Return ``/kv/{key}`` with every byte of the key percent-encoded.

    Encoding ``/`` too keeps the key one path segment; the server decodes it back.
    """
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return "/kv/" + urllib.parse.quote(raw, safe="")


@dataclass(frozen=True)
class Response:
    """One parsed HTTP response. Header names are lower-case; repeats are joined."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        """Return a header's value by case-insensitive name, or None."""
        return self.headers.get(name.lower())

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (for error bodies)."""
        return self.body.decode("utf-8", errors="replace")


@dataclass
class _Partial:
    """A response being assembled from parser callbacks."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    keep_alive: bool = True
    headers_done: bool = False

    def finish(self) -> Response:
        return Response(self.status, self.headers, b"".join(self.chunks), self.keep_alive)

    def ends_at_close(self) -> bool:
        """True if the body is delimited by connection close (no length, not chunked)."""
        return "content-length" not in self.headers and "transfer-encoding" not in self.headers


class ResponseReader:
    """Sans-IO response parser: feed bytes, get complete responses in order.

    Informational replies (``100 Continue``) are returned like any other response;
    ``Connection`` skips them, raw-socket tests look at them.
    """

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._current: _Partial | None = None
        self._done: list[Response] = []

    def feed(self, data: bytes) -> list[Response]:
        """Parse ``data``; return the responses it completed. Raises ProtocolError."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolError(f"invalid HTTP response: {exc}") from exc
        return self._take()

    def feed_eof(self) -> list[Response]:
        """The peer closed: complete a close-delimited body, drop a truncated reply."""
        current = self._current
        if current is not None and current.headers_done and current.ends_at_close():
            self._done.append(current.finish())
        self._current = None
        return self._take()

    @property
    def mid_response(self) -> bool:
        """True if some bytes of a response that is not complete yet were parsed."""
        return self._current is not None

    def _take(self) -> list[Response]:
        done, self._done = self._done, []
        return done

    # httptools callbacks (called synchronously from feed_data).

    def on_message_begin(self) -> None:
        self._current = _Partial()

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._current.headers.get(key)
        self._current.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        assert self._current is not None
        self._current.status = self._parser.get_status_code()
        self._current.keep_alive = bool(self._parser.should_keep_alive())
        self._current.headers_done = True

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._current.chunks.append(body)

    def on_message_complete(self) -> None:
        assert self._current is not None
        self._done.append(self._current.finish())
        self._current = None


def encode_request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    host: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Serialise one request; adds Host and, unless given, Content-Length."""
    extra = dict(headers or {})
    lowered = {name.lower() for name in extra}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    framed = "content-length" in lowered or "transfer-encoding" in lowered
    if not framed and (body or method in _BODY_METHODS):
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in extra.items())
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body


def frame_reply(buf: bytes | bytearray) -> tuple[int, int] | None:
    """``(status, size)`` of the first complete reply in ``buf``, or None if partial.

    Frames by ``Content-Length`` alone (every walkv-API reply carries one; none means
    an empty body): no chunked bodies, no headers kept. For closed-loop load only.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    total = end + 4 + _content_length(head)
    if len(buf) < total:
        return None
    return int(head[9:12]), total


def _content_length(head: bytes) -> int:
    """The ``Content-Length`` of a lower-cased response head; 0 when it has none."""
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    stop = head.find(b"\r\n", start)
    return int(head[start : stop if stop >= 0 else len(head)])


class _ClientProtocol(asyncio.Protocol):
    """Feeds received bytes to a ResponseReader and completes waiters in order."""

    def __init__(self) -> None:
        self.reader = ResponseReader()
        self.waiters: collections.deque[asyncio.Future[Response]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self.reader.feed(data)
        except ProtocolError as exc:
            self._fail_all(exc)
            assert self.transport is not None
            self.transport.abort()
            return
        self._deliver(responses)

    def eof_received(self) -> bool:
        self._deliver(self.reader.feed_eof())
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._deliver(self.reader.feed_eof())
        reason = f"connection closed: {exc}" if exc else "connection closed by the server"
        self._fail_all(ConnectionClosedError(reason))
        if not self.lost.done():
            self.lost.set_result(None)

    def _deliver(self, responses: list[Response]) -> None:
        for response in responses:
            if 100 <= response.status < 200:
                continue  # informational, the final reply follows
            if not self.waiters:
                self._fail_all(ProtocolError(f"unsolicited response {response.status}"))
                return
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(response)

    def _fail_all(self, exc: Exception) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


class Connection:
    """One keep-alive HTTP/1.1 connection; requests may be pipelined."""

    def __init__(self, protocol: _ClientProtocol, host: str, port: int) -> None:
        self._protocol = protocol
        self.host = host
        self.port = port

    @classmethod
    async def open(
        cls, host: str, port: int, *, timeout: float | None = REQUEST_TIMEOUT_S
    ) -> Connection:
        """Connect to ``host:port``. Raises OSError (refused, ...) or TimeoutError."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, protocol = await loop.create_connection(_ClientProtocol, host, port)
        return cls(protocol, host, port)

    @property
    def closed(self) -> bool:
        """True once the connection is gone (closed by either side)."""
        return self._protocol.lost.done()

    def send(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> asyncio.Future[Response]:
        """Write one request now; the future completes with its reply.

        The bytes are handed to the transport before this returns, which is the
        moment an oracle counts the request as sent. The future fails with
        ConnectionClosedError if the connection ends first.
        """
        transport = self._protocol.transport
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        if self.closed or transport is None or transport.is_closing():
            waiter.set_exception(ConnectionClosedError("connection already closed"))
            return waiter
        self._protocol.waiters.append(waiter)
        request = encode_request(method, path, body, host=self._host_header(), headers=headers)
        transport.write(request)
        return waiter

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and wait for its reply."""
        async with asyncio.timeout(timeout):
            return await self.send(method, path, body, headers)

    async def close(self) -> None:
        """Close the connection and wait until the socket is released."""
        transport = self._protocol.transport
        if transport is not None and not self.closed:
            transport.close()
        await self._protocol.lost

    def abort(self) -> None:
        """Drop the connection at once (RST), without waiting."""
        transport = self._protocol.transport
        if transport is not None:
            transport.abort()

    def _host_header(self) -> str:
        return f"{self.host}:{self.port}"


async def request_once(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float | None = REQUEST_TIMEOUT_S,
) -> Response:
    """One request on a fresh connection with ``Connection: close`` (lsfr's shape).

    ``timeout`` covers connect, request and response, like Go's http.Client.
    """
    all_headers = {"Connection": "close", **(headers or {})}
    async with asyncio.timeout(timeout):
        conn = await Connection.open(host, port, timeout=None)
        try:
            return await conn.request(method, path, body, all_headers)
        finally:
            await conn.close()


class KVClient:
    """The walkv API over one keep-alive connection (keys are percent-encoded)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, host: str, port: int) -> KVClient:
        """Connect to a walkv server."""
        return cls(await Connection.open(host, port))

    async def put(self, key: str | bytes, value: bytes) -> Response:
        """``PUT /kv/{key}`` with ``value`` as the body."""
        return await self.conn.request("PUT", kv_path(key), value)

    async def get(self, key: str | bytes) -> Response:
        """``GET /kv/{key}``."""
        return await self.conn.request("GET", kv_path(key))

    async def delete(self, key: str | bytes) -> Response:
        """``DELETE /kv/{key}``."""
        return await self.conn.request("DELETE", kv_path(key))

    async def clear(self) -> Response:
        """``DELETE /clear``."""
        return await self.conn.request("DELETE", "/clear")

    async def close(self) -> None:
        """Close the underlying connection."""
        await self.conn.close()


def read_responses(sock: socket.socket, count: int, timeout: float = 15.0) -> list[Response]:
    """Blocking: read from a raw socket until ``count`` responses (1xx included).

    Returns fewer if the peer closes first. For raw-socket tests that must control
    exactly which bytes go out (pipelining, ``Expect: 100-continue``, bad input), and
    for ``request_blocking``.
    """
    sock.settimeout(timeout)
    reader = ResponseReader()
    responses: list[Response] = []
    while len(responses) < count:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""  # replies that arrived before the reset were returned already
        if not data:
            responses.extend(reader.feed_eof())
            break
        responses.extend(reader.feed(data))
    return responses


def request_blocking(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    timeout: float = REQUEST_TIMEOUT_S,
) -> Response:
    """Blocking: one request on a new connection with ``Connection: close``.

    ``timeout`` bounds each socket operation (connect, send, every read). Raises
    OSError (refused, reset, ...), TimeoutError, ConnectionClosedError if the server
    closed without a reply, or ProtocolError.
    """
    request = encode_request(method, path, body, host=f"{host}:{port}",
                             headers={"Connection": "close"})
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        replies = read_responses(sock, 1, timeout)
    if not replies:
        raise ConnectionClosedError("connection closed before a reply")
    return replies[0]
