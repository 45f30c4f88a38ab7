"""The ceiling: a bare uvloop + httptools server holding a dict, with no durability.

It speaks the walkv API of CONTRACT.md section 2 (same routes, status codes, error
bodies, keep-alive, pipelining, chunked bodies, ``Expect: 100-continue``) and is
started like any target (``harness/bench/ceiling/run.sh --port=P --working-dir=D``), so
the benchmark can put walkv's numbers next to the fastest a Python server of this
shape can be on the same machine. It imports nothing from walkv or the harness on
purpose (not even ``raise_nofile_limit``): a yardstick that shared their code would
move whenever they do.

Not a server to keep data in: nothing is written to disk, a restart starts empty.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import sys
from typing import Final, NoReturn, cast
from urllib.parse import unquote_to_bytes

import httptools
import uvloop

MAX_HEADER_BYTES: Final = 64 * 1024


def _reply(status: str, body: bytes = b"", extra: bytes = b"", close: bool = False) -> bytes:
    """A whole response; error bodies are text, values are sent by ``_value``."""
    head = b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: %d\r\n" % len(body)
    if body:
        head += b"Content-Type: text/plain; charset=utf-8\r\n"
    if close:
        head += b"Connection: close\r\n"
    return head + extra + b"\r\n" + body


OK: Final = _reply("200 OK")
KEY_EMPTY: Final = _reply("400 Bad Request", b"key cannot be empty\n")
VALUE_EMPTY: Final = _reply("400 Bad Request", b"value cannot be empty\n")
KEY_NOT_FOUND: Final = _reply("404 Not Found", b"key not found\n")
NOT_FOUND: Final = _reply("404 Not Found", b"not found\n")
KV_405: Final = _reply("405 Method Not Allowed", b"method not allowed\n",
                       b"Allow: GET, PUT, DELETE\r\n")
CLEAR_405: Final = _reply("405 Method Not Allowed", b"method not allowed\n", b"Allow: DELETE\r\n")
TOO_LARGE: Final = _reply("413 Content Too Large", b"value too large\n", close=True)
BAD_REQUEST: Final = _reply("400 Bad Request", b"bad request\n", close=True)
HEADERS_TOO_LARGE: Final = _reply("431 Request Header Fields Too Large",
                                  b"request header fields too large\n", close=True)
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
VALUE_HEAD: Final = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n")


class KVProtocol(asyncio.Protocol):
    """One connection: httptools callbacks build a request, the dict answers at once.

    Every reply is written as soon as its request is complete, so pipelined replies
    leave in request order without any queue.
    """

    def __init__(self, store: dict[bytes, bytes], max_value: int) -> None:
        self.store = store
        self.max_value = max_value
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.body_size = 0
        self.header_bytes = 0
        self.expect_continue = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._close_with(BAD_REQUEST)

    # httptools callbacks, in the order the parser calls them.

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.body_size = 0
        self.header_bytes = 0
        self.expect_continue = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        lowered = name.lower()
        if lowered == b"content-length" and value.strip().isdigit():
            if int(value) > self.max_value:
                self._close_with(TOO_LARGE)
        elif lowered == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        transport = self.transport
        if self.expect_continue and transport is not None and not transport.is_closing():
            transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.max_value:  # chunked bodies have no length up front
            self._close_with(TOO_LARGE)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._answer(transport, self.parser.get_method())
        if not self.parser.should_keep_alive():
            transport.close()

    # routing and replies

    def _answer(self, transport: asyncio.Transport, method: bytes) -> None:
        path = self.url.partition(b"?")[0].partition(b"#")[0]
        if path.startswith(b"/kv/"):
            raw = path[4:]
            self._kv(transport, method, unquote_to_bytes(raw) if b"%" in raw else raw)
        elif path == b"/clear":
            if method == b"DELETE":
                self.store.clear()
                transport.write(OK)
            else:
                transport.write(CLEAR_405)
        else:
            transport.write(NOT_FOUND)

    def _kv(self, transport: asyncio.Transport, method: bytes, key: bytes) -> None:
        if method not in (b"GET", b"PUT", b"DELETE"):
            transport.write(KV_405)
        elif not key:
            transport.write(KEY_EMPTY)
        elif method == b"GET":
            value = self.store.get(key)
            if value is None:
                transport.write(KEY_NOT_FOUND)
            else:
                transport.write(VALUE_HEAD % len(value) + value)
        elif method == b"PUT":
            body = b"".join(self.body)
            if body:
                self.store[key] = body
            transport.write(OK if body else VALUE_EMPTY)
        else:
            self.store.pop(key, None)
            transport.write(OK)

    def _count_header_bytes(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            self._close_with(HEADERS_TOO_LARGE)

    def _close_with(self, reply: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(reply)
            transport.close()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line, as CONTRACT.md asks of bad start-up input.
        sys.stderr.write(f"ceiling: error: {message}\n")
        sys.exit(2)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The contract's start-up flags (values only; there is nothing to tune)."""
    parser = _Parser(prog="harness/bench/ceiling/run.sh", description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--working-dir", default="./data")
    parser.add_argument("--max-value-bytes", type=int, default=64 * 1024 * 1024)
    return parser.parse_args(argv)


def _raise_nofile_limit() -> None:
    """Soft fd limit up to the hard one: a burst holds 10,000 connections at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = (1 << 20) if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # keep the soft limit then
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(args: argparse.Namespace) -> None:
    """Listen until SIGTERM or SIGINT, then close the listener and return."""
    loop = asyncio.get_running_loop()
    store: dict[bytes, bytes] = {}
    server = await loop.create_server(
        lambda: KVProtocol(store, args.max_value_bytes), args.host, args.port,
        backlog=4096, reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ceiling: listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``harness/bench/ceiling/run.sh``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        os.makedirs(args.working_dir, exist_ok=True)  # the contract creates it; nothing goes in
        _raise_nofile_limit()
        uvloop.run(serve(args))
    except OSError as exc:
        print(f"ceiling: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
