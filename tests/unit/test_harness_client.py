"""The harness HTTP client: sans-IO response parsing, request encoding, a live socket."""

from __future__ import annotations

import asyncio

import pytest

from harness.client import (
    Connection,
    ResponseReader,
    encode_request,
    kv_path,
    request_blocking,
    request_once,
)
from harness.errors import ConnectionClosedError, ProtocolError

PIPELINED = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: application/octet-stream\r\n\r\nabc"
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\nX-A: 1\r\nX-A: 2\r\n\r\nkey not found\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("step", [len(PIPELINED), 1, 7])
def test_reader_parses_pipelined_responses_in_any_split(step: int) -> None:
    reader = ResponseReader()
    responses = []
    for start in range(0, len(PIPELINED), step):
        responses.extend(reader.feed(PIPELINED[start : start + step]))
    assert [r.status for r in responses] == [100, 200, 404, 200]
    assert responses[1].body == b"abc"
    assert responses[1].header("Content-Type") == "application/octet-stream"
    assert responses[2].text == "key not found\n"
    assert responses[2].header("x-a") == "1, 2"
    assert responses[3].body == b"hello"
    assert not reader.mid_response


def test_reader_completes_close_delimited_body_at_eof() -> None:
    reader = ResponseReader()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial") == []
    (response,) = reader.feed_eof()
    assert response.body == b"partial"
    assert not response.keep_alive


def test_reader_drops_truncated_response_at_eof() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert reader.mid_response
    assert reader.feed_eof() == []


def test_reader_rejects_garbage() -> None:
    with pytest.raises(ProtocolError):
        ResponseReader().feed(b"SPDY/9 what\r\n\r\n")


def test_encode_request_frames_bodies() -> None:
    assert encode_request("GET", "/kv/a") == b"GET /kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    put = encode_request("PUT", "/kv/a", b"xyz", headers={"Connection": "close"})
    assert put.endswith(b"Content-Length: 3\r\nConnection: close\r\n\r\nxyz")
    assert b"Content-Length: 0\r\n" in encode_request("PUT", "/kv/a")
    chunked = encode_request("PUT", "/kv/a", headers={"Transfer-Encoding": "chunked"})
    assert b"Content-Length" not in chunked


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("plain", "/kv/plain"),
        ("a/b", "/kv/a%2Fb"),
        ("a b:c", "/kv/a%20b%3Ac"),
        ("é", "/kv/%C3%A9"),
        (b"\xff\x00", "/kv/%FF%00"),
        ("100%", "/kv/100%25"),
    ],
)
def test_kv_path_percent_encodes_every_reserved_byte(key: str | bytes, path: str) -> None:
    assert kv_path(key) == path


async def _canned_server(
    replies: list[bytes], close_after: bool
) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that reads requests and writes ``replies`` back, all at once."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.write(b"".join(replies))
        await writer.drain()
        if close_after:
            writer.close()
        else:
            await reader.read()  # hold the connection until the client closes

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, received


async def test_connection_matches_pipelined_replies_to_requests_in_order() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
    server, port, received = await _canned_server([ok + b"1", ok + b"2", ok + b"3"], False)
    async with server:
        conn = await Connection.open("127.0.0.1", port)
        futures = [conn.send("GET", kv_path(str(i))) for i in range(3)]
        bodies = [(await future).body for future in futures]
        await conn.close()
    assert bodies == [b"1", b"2", b"3"]
    assert received[0].count(b"GET /kv/") == 3


async def test_connection_fails_requests_left_without_a_reply() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"
    server, port, _ = await _canned_server([ok], True)
    async with server:
        conn = await Connection.open("127.0.0.1", port)
        first, second = conn.send("GET", "/kv/a"), conn.send("GET", "/kv/b")
        assert (await first).status == 200
        with pytest.raises(ConnectionClosedError):
            await second
        await conn.close()


async def test_request_once_sends_connection_close() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    server, port, received = await _canned_server([ok], True)
    async with server:
        response = await request_once("127.0.0.1", port, "PUT", "/kv/k", b"v")
    assert response.status == 200
    assert b"Connection: close\r\n" in received[0]


async def test_request_blocking_reads_one_reply_without_an_event_loop() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nvalue"
    server, port, received = await _canned_server([ok], True)
    async with server:
        response = await asyncio.to_thread(request_blocking, "127.0.0.1", port, "GET", "/kv/k")
    assert (response.status, response.body) == (200, b"value")
    assert received[0].startswith(b"GET /kv/k HTTP/1.1\r\n")
    assert b"Connection: close\r\n" in received[0]


async def test_request_blocking_without_a_reply_is_connection_closed() -> None:
    server, port, _ = await _canned_server([], True)
    async with server:
        with pytest.raises(ConnectionClosedError):
            await asyncio.to_thread(request_blocking, "127.0.0.1", port, "GET", "/kv/k")
