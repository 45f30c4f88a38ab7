"""A minimal Redis-protocol (RESP2) client for the crash harness: commands out, replies in.

The harness needs exact control over what is in flight when the server dies: a
request is recorded by the oracle, then its bytes are handed to the socket, then its
replies are read, with no retry, reconnect or pooling in between (a client library
that retries an INCR after a reset could apply it twice, and would hide the
connection's fate from the oracle). So the wire is written out here, small:

- ``encode`` turns commands into multibulk bytes;
- ``ReplyParser`` is sans-IO: bytes in (whole or a byte at a time), replies out;
- ``RespConnection`` sends a batch of commands in one write and reads as many replies.

Replies are plain values: ``bytes`` (simple or bulk string), ``int``, ``None`` (null
bulk or null array), ``list`` (array) or ``ErrorReply``. Only RESP2 is spoken: the
connection never sends HELLO.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import ConnectionClosedError, HarnessError

REPLY_TIMEOUT_S = 15.0
"""How long a batch may wait for its replies (the HTTP client's request timeout)."""


class RespProtocolError(HarnessError):
    """The server sent bytes that are not a RESP2 reply."""


@dataclass(frozen=True)
class ErrorReply:
    """A ``-ERR ...`` style reply: the server answered, and refused or failed."""

    message: bytes


Reply = bytes | int | None | list["Reply"] | ErrorReply
Command = Sequence[bytes | str | int]

RESP_ERRORS = (OSError, TimeoutError, ConnectionClosedError, RespProtocolError)
"""What a batch of commands fails with: refused, reset, timed out, closed before every
reply arrived, or answered with bytes that are not RESP. Its outcome is unknown."""


def _arg(part: bytes | str | int) -> bytes:
    if isinstance(part, bytes):
        return part
    return (str(part) if isinstance(part, int) else part).encode()


def encode(commands: Sequence[Command]) -> bytes:
    """Commands as RESP multibulk requests, back to back."""
    out = bytearray()
    for command in commands:
        out += b"*%d\r\n" % len(command)
        for part in map(_arg, command):
            out += b"$%d\r\n%s\r\n" % (len(part), part)
    return bytes(out)


class _Incomplete(Exception):
    """More bytes are needed for the reply at the current position."""


class ReplyParser:
    """Bytes in (``feed``), complete replies out (``pop``), in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._replies: list[Reply] = []

    def feed(self, data: bytes) -> None:
        """Add bytes from the socket and parse every reply they complete."""
        self._buffer += data
        done = 0
        try:
            while done < len(self._buffer):
                reply, done = self._parse(done)
                self._replies.append(reply)
        except _Incomplete:
            pass  # the rest waits for more bytes
        finally:
            del self._buffer[:done]

    def pop(self) -> list[Reply]:
        """The replies parsed so far, oldest first; they are removed."""
        replies, self._replies = self._replies, []
        return replies

    def _line(self, start: int) -> tuple[bytes, int]:
        end = self._buffer.find(b"\r\n", start)
        if end < 0:
            raise _Incomplete
        return bytes(self._buffer[start + 1:end]), end + 2

    def _number(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RespProtocolError(f"not a number: {text[:40]!r}") from None

    def _parse(self, start: int) -> tuple[Reply, int]:
        kind = self._buffer[start:start + 1]
        line, end = self._line(start)
        if kind == b"+":
            return line, end
        if kind == b"-":
            return ErrorReply(line), end
        if kind == b":":
            return self._number(line), end
        if kind == b"$":
            return self._bulk(self._number(line), end)
        if kind == b"*":
            return self._array(self._number(line), end)
        raise RespProtocolError(f"unknown reply type {kind!r}")

    def _bulk(self, size: int, start: int) -> tuple[Reply, int]:
        if size < 0:
            return None, start
        end = start + size + 2
        if len(self._buffer) < end:
            raise _Incomplete
        if self._buffer[end - 2:end] != b"\r\n":
            raise RespProtocolError("bulk string not followed by CRLF")
        return bytes(self._buffer[start:end - 2]), end

    def _array(self, count: int, start: int) -> tuple[Reply, int]:
        if count < 0:
            return None, start
        items: list[Reply] = []
        for _ in range(count):
            item, start = self._parse(start)
            items.append(item)
        return items, start


class RespConnection:
    """One client connection: a batch of commands out, their replies back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = REPLY_TIMEOUT_S) -> RespConnection:
        """Connect; raises OSError or TimeoutError."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def call(self, commands: Sequence[Command],
                   timeout: float = REPLY_TIMEOUT_S) -> list[Reply]:
        """Send ``commands`` in one write, return their replies (one each).

        The bytes are handed to the socket before the first await, so a caller that
        records a request just before calling this has recorded it before it left.
        Any failure (RESP_ERRORS) closes the connection.
        """
        try:
            self._writer.write(encode(commands))
            async with asyncio.timeout(timeout):
                return await self._replies(len(commands))
        except RESP_ERRORS:
            await self.close()
            raise

    async def _replies(self, count: int) -> list[Reply]:
        replies: list[Reply] = []
        while True:
            replies += self._parser.pop()
            if len(replies) >= count:
                if len(replies) > count:
                    raise RespProtocolError(f"{len(replies) - count} replies nobody asked for")
                return replies
            data = await self._reader.read(1 << 16)
            if not data:
                raise ConnectionClosedError("connection closed before every reply arrived")
            self._parser.feed(data)

    async def close(self) -> None:
        """Close the socket (idempotent); errors while closing are the peer's business."""
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
