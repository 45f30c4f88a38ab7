"""The crash harness's RESP2 client: encoding, and parsing replies fed whole or a byte at a time.

The parser is sans-IO, so every reply type is checked from bytes alone; one test runs
the connection against a tiny asyncio server that answers as Redis would and then
hangs up, which is what a SIGKILLed server looks like to a writer.
"""

from __future__ import annotations

import asyncio

import pytest

from harness.crash.respwire import (
    RESP_ERRORS,
    ErrorReply,
    Reply,
    ReplyParser,
    RespConnection,
    RespProtocolError,
    encode,
)
from harness.errors import ConnectionClosedError


def test_commands_are_encoded_as_multibulk_back_to_back() -> None:
    assert encode([(b"SET", "k\xe9y", b"\x00\r\n"), ("INCRBY", b"n", 7)]) == (
        b"*3\r\n$3\r\nSET\r\n$4\r\nk\xc3\xa9y\r\n$3\r\n\x00\r\n\r\n"
        b"*3\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$1\r\n7\r\n")


REPLIES: list[tuple[bytes, Reply]] = [
    (b"+OK\r\n", b"OK"),
    (b"-EXECABORT Transaction discarded\r\n", ErrorReply(b"EXECABORT Transaction discarded")),
    (b":-2\r\n", -2),
    (b"$5\r\nab\r\nc\r\n", b"ab\r\nc"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n+OK\r\n:1\r\n*1\r\n$-1\r\n", [b"OK", 1, [None]]),
]


@pytest.mark.parametrize(("wire", "reply"), REPLIES, ids=[repr(w[:12]) for w, _ in REPLIES])
def test_every_reply_type_parses_whole_and_a_byte_at_a_time(wire: bytes, reply: Reply) -> None:
    whole = ReplyParser()
    whole.feed(wire + wire)
    assert whole.pop() == [reply, reply]
    trickle = ReplyParser()
    seen: list[Reply] = []
    for i in range(len(wire)):
        trickle.feed(wire[i:i + 1])
        seen += trickle.pop()
        assert seen == ([reply] if i == len(wire) - 1 else [])


@pytest.mark.parametrize("wire", [b"?what\r\n", b":12x\r\n", b"$2\r\nabXY"])
def test_bytes_that_are_not_resp_are_a_protocol_error(wire: bytes) -> None:
    with pytest.raises(RespProtocolError):
        ReplyParser().feed(wire)


async def test_a_connection_reads_one_reply_per_command_and_fails_when_the_peer_dies() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"INCR\r\n$1\r\nn\r\n")
        writer.write(b"+OK\r\n+QUEUED\r\n*1\r\n:5\r\n")
        await reader.readuntil(b"GET\r\n$1\r\nk\r\n")
        writer.close()  # the server is gone before it answers

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        conn = await RespConnection.open("127.0.0.1", port)
        replies = await conn.call([(b"MULTI",), (b"INCR", b"n"), (b"EXEC",)])
        assert replies == [b"OK", b"QUEUED", [5]]
        with pytest.raises(RESP_ERRORS) as failed:
            await conn.call([(b"GET", b"k")])
        assert isinstance(failed.value, ConnectionClosedError | OSError)
        assert conn.closed
