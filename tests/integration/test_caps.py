"""Caps on what a client controls, seen from outside: idle connections are closed, and
a client that does not read its answers cannot make the server buffer without bound."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import psutil
import pytest

from harness.client import KVClient, ResponseReader, encode_request, kv_path
from harness.proc import ServerProcess

ServerFactory = Callable[..., ServerProcess]

pytestmark = pytest.mark.timeout(120)


async def test_idle_keep_alive_connection_is_closed(make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--idle-timeout=0.5"])
    await asyncio.to_thread(server.start)
    with socket.create_connection((server.connect_host, server.port), timeout=10) as sock:
        sock.sendall(encode_request("GET", kv_path("nothing")))
        reader = ResponseReader()
        responses = []
        while not responses:
            responses = reader.feed(sock.recv(65536))
        assert responses[0].status == 404
        started = time.monotonic()
        assert sock.recv(1) == b"", "the server should close an idle connection"
        assert time.monotonic() - started < 5


async def test_client_that_does_not_read_cannot_grow_server_memory(
    server: ServerProcess,
) -> None:
    # Under 64 KiB an answer is built as one new buffer (head + value), so every queued
    # answer would cost its full size.
    value = bytes(range(256)) * 240  # 60 KiB
    client = await KVClient.open(server.connect_host, server.port)
    try:
        assert (await client.put("big", value)).status == 200
    finally:
        await client.close()
    process = psutil.Process(server.pid)
    count = 6000  # 360 MiB of answers if the server produced them all at once
    before = process.memory_info().rss
    with socket.create_connection((server.connect_host, server.port), timeout=30) as sock:
        sock.sendall(encode_request("GET", kv_path("big")) * count)
        await asyncio.sleep(1.5)  # the server reads what it can; nobody reads its answers
        grown = process.memory_info().rss - before
        assert grown < 64 << 20, f"server RSS grew by {grown >> 20} MiB for a stalled client"

        reader = ResponseReader()
        responses = []
        while len(responses) < count:
            data = sock.recv(1 << 20)
            assert data, f"connection closed after {len(responses)} answers"
            responses.extend(reader.feed(data))
    assert [r.status for r in responses] == [200] * count
    assert all(r.body == value for r in responses)
