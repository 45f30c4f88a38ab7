"""The ceiling fixture speaks CONTRACT.md section 2, so it is a fair yardstick.

The server runs in-process on port 0 (its protocol class on the test's event loop);
requests go through the harness client, one new connection each like lsfr, or raw
bytes where the test controls framing (pipelining, chunked, 100-continue, garbage).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from harness.bench.ceiling.server import KVProtocol, parse_args
from harness.client import Response, kv_path, read_responses, request_once

TEXT = "text/plain; charset=utf-8"
MAX_VALUE = 1024


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """A ceiling server on a free port with a 1 KiB value limit."""
    store: dict[bytes, bytes] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: KVProtocol(store, MAX_VALUE), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def call(port: int, method: str, path: str, body: bytes = b"") -> Response:
    """One request on a new connection."""
    return await request_once("127.0.0.1", port, method, path, body, timeout=5)


def assert_text(response: Response, status: int, text: str) -> None:
    """An error reply with the contract's exact body and content type."""
    assert (response.status, response.text, response.header("content-type")) == (
        status, text, TEXT)


async def test_put_get_delete_round_trip(port: int) -> None:
    assert (await call(port, "PUT", kv_path("k"), b"\x00\xffvalue")).status == 200
    got = await call(port, "GET", kv_path("k"))
    assert (got.status, got.body) == (200, b"\x00\xffvalue")
    assert got.header("content-type") == "application/octet-stream"
    assert (await call(port, "DELETE", kv_path("k"))).status == 200
    assert_text(await call(port, "GET", kv_path("k")), 404, "key not found\n")
    assert (await call(port, "DELETE", kv_path("never"))).status == 200


async def test_clear_removes_every_key(port: int) -> None:
    for key in ("a", "b"):
        assert (await call(port, "PUT", kv_path(key), b"v")).status == 200
    assert (await call(port, "DELETE", "/clear")).status == 200
    assert (await call(port, "GET", kv_path("a"))).status == 404
    assert (await call(port, "DELETE", "/clear")).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("PUT", "/kv/", b"v", 400, "key cannot be empty\n"),
        ("GET", "/kv/", b"", 400, "key cannot be empty\n"),
        ("DELETE", "/kv/", b"", 400, "key cannot be empty\n"),
        ("PUT", "/kv/k", b"", 400, "value cannot be empty\n"),
        ("POST", "/kv/k", b"x", 405, "method not allowed\n"),
        ("PATCH", "/kv/k", b"x", 405, "method not allowed\n"),
        ("GET", "/clear", b"", 405, "method not allowed\n"),
        ("PUT", "/clear", b"x", 405, "method not allowed\n"),
        ("GET", "/", b"", 404, "not found\n"),
        ("GET", "/kv", b"", 404, "not found\n"),
        ("GET", "/KV/a", b"", 404, "not found\n"),
    ],
)
async def test_contract_error_replies(
    port: int, method: str, path: str, body: bytes, status: int, text: str
) -> None:
    assert_text(await call(port, method, path, body), status, text)


@pytest.mark.parametrize(("path", "allowed"), [("/kv/k", "GET, PUT, DELETE"), ("/clear", "DELETE")])
async def test_405_names_the_allowed_methods(port: int, path: str, allowed: str) -> None:
    assert (await call(port, "POST", path, b"x")).header("allow") == allowed


async def test_value_over_the_limit_is_413(port: int) -> None:
    response = await call(port, "PUT", kv_path("big"), b"x" * (MAX_VALUE + 1))
    assert response.status == 413
    assert (await call(port, "GET", kv_path("big"))).status == 404


async def test_keys_are_percent_decoded(port: int) -> None:
    assert (await call(port, "PUT", kv_path("a/b ключ"), b"v")).status == 200
    assert (await call(port, "GET", "/kv/a/b%20%D0%BA%D0%BB%D1%8E%D1%87")).body == b"v"
    assert (await call(port, "GET", kv_path("a/b ключ") + "?q=1")).body == b"v"


def _raw(port: int, data: bytes, replies: int) -> list[Response]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return read_responses(sock, replies, timeout=5)


async def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    data = (b"PUT /kv/p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nv1"
            b"GET /kv/p HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /kv/none HTTP/1.1\r\nHost: x\r\n\r\n")
    replies = await asyncio.to_thread(_raw, port, data, 3)
    assert [(r.status, r.body) for r in replies] == [(200, b""), (200, b"v1"),
                                                    (404, b"key not found\n")]


async def test_chunked_body_and_100_continue(port: int) -> None:
    data = (b"PUT /kv/c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /kv/c HTTP/1.1\r\nHost: x\r\n\r\n")
    replies = await asyncio.to_thread(_raw, port, data, 3)
    assert [r.status for r in replies] == [100, 200, 200]
    assert replies[2].body == b"abcde"


async def test_malformed_request_is_400_and_closes(port: int) -> None:
    replies = await asyncio.to_thread(_raw, port, b"NOT HTTP AT ALL\r\n\r\n", 2)
    assert [r.status for r in replies] == [400]


def test_accepts_the_contract_start_flags() -> None:
    args = parse_args(["--port=9", "--working-dir", "d", "--host", "::1"])
    assert (args.port, args.working_dir, args.host) == (9, "d", "::1")


def test_unknown_flag_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--unsafe-no-fsync"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_ceiling_imports_nothing_from_walkv_or_the_harness() -> None:
    """A yardstick sharing walkv's or the harness's code would move when they do."""
    code = ("import sys, harness.bench.ceiling.server; "
            "print(' '.join(sorted(m for m in sys.modules "
            "if m.partition('.')[0] in ('harness', 'server', 'storage'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.split() == ["harness", "harness.bench", "harness.bench.ceiling",
                                   "harness.bench.ceiling.server"]
