"""CONTRACT.md section 2, checked from outside against the real server.

Most tests share one server per module (each test uses its own keys); tests that
need an empty store, a special flag or restarts start their own.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.client import KVClient, Response, encode_request, kv_path, read_responses, request_once
from harness.proc import ServerProcess

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., ServerProcess]

TEXT_PLAIN = "text/plain; charset=utf-8"
OCTET_STREAM = "application/octet-stream"


@pytest.fixture(scope="module")
def shared(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that only need their own keys."""
    tmp = tmp_path_factory.mktemp("contract")
    with ServerProcess(target, tmp / "data", log_dir=tmp / "logs", name="shared") as server:
        server.start()
        yield server


async def call(
    server: ServerProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    """One request on a new connection, as the lsfr harness sends it."""
    return await request_once(server.connect_host, server.port, method, path, body, headers)


def assert_text_reply(response: Response, status: int, body: str) -> None:
    """An error reply: exact status, exact body, exact Content-Type."""
    assert (response.status, response.text) == (status, body)
    assert response.header("content-type") == TEXT_PLAIN


def assert_value_reply(response: Response, value: bytes) -> None:
    """A successful GET: 200, exactly the stored bytes, octet-stream."""
    assert response.status == 200, response
    assert response.body == value
    assert response.header("content-type") == OCTET_STREAM


def allowed_methods(response: Response) -> set[str]:
    """The methods named in an ``Allow`` header (missing header: empty set)."""
    allow = response.header("allow") or ""
    return {part.strip().upper() for part in allow.split(",") if part.strip()}


def raw_socket(server: ServerProcess) -> socket.socket:
    """A plain TCP connection, for tests that control every byte sent."""
    sock = socket.create_connection((server.connect_host, server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def assert_closed_by_server(sock: socket.socket) -> None:
    """The server closed the connection (EOF or reset) instead of waiting for more."""
    sock.settimeout(5)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return
    except TimeoutError:
        pytest.fail("server kept the connection open after a 400")
    assert data == b"", f"unexpected bytes after the error reply: {data!r}"


# -- PUT / GET / DELETE ------------------------------------------------------------


async def test_put_then_get_returns_exact_value_as_octet_stream(shared: ServerProcess) -> None:
    put = await call(shared, "PUT", kv_path("basic"), b"hello")
    assert put.status == 200
    assert_value_reply(await call(shared, "GET", kv_path("basic")), b"hello")


async def test_overwrite_returns_the_newest_value(shared: ServerProcess) -> None:
    for value in (b"first", b"second, longer value", b"3"):
        assert (await call(shared, "PUT", kv_path("overwritten"), value)).status == 200
    assert_value_reply(await call(shared, "GET", kv_path("overwritten")), b"3")


async def test_get_missing_key_is_404_key_not_found(shared: ServerProcess) -> None:
    assert_text_reply(await call(shared, "GET", kv_path("never-written")), 404, "key not found\n")


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
async def test_empty_key_is_400(shared: ServerProcess, method: str) -> None:
    body = b"value" if method == "PUT" else b""
    assert_text_reply(await call(shared, method, "/kv/", body), 400, "key cannot be empty\n")


async def test_put_empty_value_is_400_and_stores_nothing(shared: ServerProcess) -> None:
    response = await call(shared, "PUT", kv_path("empty-value"), b"")
    assert_text_reply(response, 400, "value cannot be empty\n")
    assert (await call(shared, "GET", kv_path("empty-value"))).status == 404


async def test_delete_removes_the_key(shared: ServerProcess) -> None:
    assert (await call(shared, "PUT", kv_path("doomed"), b"v")).status == 200
    assert (await call(shared, "DELETE", kv_path("doomed"))).status == 200
    assert_text_reply(await call(shared, "GET", kv_path("doomed")), 404, "key not found\n")


async def test_delete_of_missing_key_is_200(shared: ServerProcess) -> None:
    assert (await call(shared, "DELETE", kv_path("not-there"))).status == 200


async def test_clear_removes_every_key(server: ServerProcess) -> None:
    keys = [f"clear-{i}" for i in range(20)]
    for key in keys:
        assert (await call(server, "PUT", kv_path(key), key.encode())).status == 200
    assert (await call(server, "DELETE", "/clear")).status == 200
    for key in keys:
        assert_text_reply(await call(server, "GET", kv_path(key)), 404, "key not found\n")
    assert (await call(server, "PUT", kv_path("after-clear"), b"v")).status == 200


async def test_clear_on_empty_store_is_200(server: ServerProcess) -> None:
    assert (await call(server, "DELETE", "/clear")).status == 200
    assert (await call(server, "DELETE", "/clear")).status == 200


# -- 405 / 404 ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_other_method_on_key_is_405_with_allow(shared: ServerProcess, method: str) -> None:
    response = await call(shared, method, kv_path("k"), b"body")
    assert_text_reply(response, 405, "method not allowed\n")
    allow = allowed_methods(response)
    assert {"GET", "PUT", "DELETE"} <= allow, response.header("allow")
    assert method not in allow


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH"])
async def test_other_method_on_clear_is_405_with_allow(shared: ServerProcess, method: str) -> None:
    body = b"x" if method in ("POST", "PUT", "PATCH") else b""
    response = await call(shared, method, "/clear", body)
    assert_text_reply(response, 405, "method not allowed\n")
    allow = allowed_methods(response)
    assert "DELETE" in allow, response.header("allow")
    assert method not in allow


@pytest.mark.parametrize("path", ["/", "/nope", "/kvx/a", "/clearall", "/KV/a", "/api/kv/a"])
async def test_unknown_path_is_404_not_found(shared: ServerProcess, path: str) -> None:
    assert_text_reply(await call(shared, "GET", path), 404, "not found\n")


# -- keys --------------------------------------------------------------------------

SPECIAL_KEYS = [
    "user:42:profile",
    "a-b_c.d",
    "dir/sub/file.txt",
    "/leading/and/trailing/",
    "ключ",
    "日本語のキー",
    "emoji-🔑",
    "space in key",
    "100%real",
    "query?x=1&y=2#frag",
    "plus+and=equals",
    "..",
]


@pytest.mark.parametrize("key", SPECIAL_KEYS)
async def test_special_key_round_trips(shared: ServerProcess, key: str) -> None:
    value = f"value of {key}".encode()
    assert (await call(shared, "PUT", kv_path(key), value)).status == 200
    assert_value_reply(await call(shared, "GET", kv_path(key)), value)
    assert (await call(shared, "DELETE", kv_path(key))).status == 200
    assert (await call(shared, "GET", kv_path(key))).status == 404


async def test_unencoded_slashes_are_part_of_the_key(shared: ServerProcess) -> None:
    assert (await call(shared, "PUT", "/kv/raw/slash/key", b"slashes")).status == 200
    assert_value_reply(await call(shared, "GET", kv_path("raw/slash/key")), b"slashes")


async def test_percent_encoded_path_is_decoded(shared: ServerProcess) -> None:
    assert (await call(shared, "PUT", "/kv/caf%C3%A9%3Anoir", b"encoded")).status == 200
    assert_value_reply(await call(shared, "GET", kv_path("café:noir")), b"encoded")


async def test_keys_are_case_sensitive(shared: ServerProcess) -> None:
    assert (await call(shared, "PUT", kv_path("CaseKey"), b"upper")).status == 200
    assert (await call(shared, "PUT", kv_path("casekey"), b"lower")).status == 200
    assert_value_reply(await call(shared, "GET", kv_path("CaseKey")), b"upper")
    assert_value_reply(await call(shared, "GET", kv_path("casekey")), b"lower")


# -- values ------------------------------------------------------------------------

BINARY_VALUES = {
    "all-256-bytes": bytes(range(256)),
    "invalid-utf8": b"\xff\xfe\xfd\xc3\x28\xa0\xa1",
    "nul-bytes": b"\x00" * 17,
    "http-lookalike": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "single-byte": b"\x80",
}


@pytest.mark.parametrize("name", sorted(BINARY_VALUES))
async def test_binary_value_round_trips_exactly(shared: ServerProcess, name: str) -> None:
    value = BINARY_VALUES[name]
    assert (await call(shared, "PUT", kv_path(f"binary-{name}"), value)).status == 200
    assert_value_reply(await call(shared, "GET", kv_path(f"binary-{name}")), value)


async def test_one_mib_value_round_trips(shared: ServerProcess) -> None:
    value = bytes(range(256)) * 4096
    assert (await call(shared, "PUT", kv_path("mib"), value)).status == 200
    assert_value_reply(await call(shared, "GET", kv_path("mib")), value)


async def test_value_over_limit_is_413(make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--max-value-bytes=1024"])
    server.start()
    assert (await call(server, "PUT", kv_path("at-limit"), b"a" * 1024)).status == 200
    response = await call(server, "PUT", kv_path("over-limit"), b"b" * 1025)
    assert response.status == 413
    assert (await call(server, "GET", kv_path("over-limit"))).status == 404
    far_over = await call(server, "PUT", kv_path("far-over-limit"), b"c" * (1 << 20))
    assert far_over.status == 413
    assert_value_reply(await call(server, "GET", kv_path("at-limit")), b"a" * 1024)


# -- connection handling -----------------------------------------------------------


async def test_keep_alive_serves_many_requests_on_one_connection(shared: ServerProcess) -> None:
    client = await KVClient.open(shared.connect_host, shared.port)
    try:
        for i in range(50):
            assert (await client.put(f"ka-{i}", b"%d" % i)).status == 200
        for i in range(50):
            assert_value_reply(await client.get(f"ka-{i}"), b"%d" % i)
        assert not client.conn.closed
    finally:
        await client.close()


def test_pipelined_requests_are_answered_in_order(shared: ServerProcess) -> None:
    requests = [
        encode_request("PUT", kv_path("piped"), b"pipelined value"),
        encode_request("GET", kv_path("piped")),
        encode_request("GET", kv_path("piped-missing")),
        encode_request("DELETE", kv_path("piped")),
        encode_request("GET", kv_path("piped")),
    ]
    with raw_socket(shared) as sock:
        sock.sendall(b"".join(requests))  # one write: all requests arrive together
        replies = read_responses(sock, len(requests))
    # Each request sees the effects of the ones before it and none after it: the
    # first GET must see the PUT although a DELETE follows in the same pipeline.
    assert [r.status for r in replies] == [200, 200, 404, 200, 404], [r.text for r in replies]
    assert replies[1].body == b"pipelined value"
    assert replies[2].text == "key not found\n"


def test_chunked_put_stores_the_joined_chunks(shared: ServerProcess) -> None:
    chunks = [b"first chunk|", bytes(range(256)), b"|" + b"z" * 5000]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    head = encode_request("PUT", kv_path("chunked"), headers={"Transfer-Encoding": "chunked"})
    with raw_socket(shared) as sock:
        sock.sendall(head)
        sock.sendall(body)
        sock.sendall(encode_request("GET", kv_path("chunked")))
        put, get = read_responses(sock, 2)
    assert put.status == 200
    assert_value_reply(get, b"".join(chunks))


def test_expect_100_continue_is_answered_before_the_body(shared: ServerProcess) -> None:
    value = bytes(range(256)) * 800
    head = encode_request(
        "PUT",
        kv_path("continued"),
        headers={"Content-Length": str(len(value)), "Expect": "100-continue"},
    )
    with raw_socket(shared) as sock:
        sock.sendall(head)
        interim = recv_head(sock, timeout=5)  # curl gives up waiting after 1 s
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        sock.sendall(value)
        (final,) = read_responses(sock, 1)
    assert final.status == 200
    assert_value_reply(_get_sync(shared, "continued"), value)


def recv_head(sock: socket.socket, timeout: float) -> bytes:
    """Read one response head (up to the blank line) byte by byte, nothing more."""
    sock.settimeout(timeout)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return head


MALFORMED = {
    "not-http": b"THIS IS NOT HTTP\r\n\r\n",
    "header-without-colon": b"GET /kv/a HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "bad-content-length": b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "bad-chunk-size": (
        b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"
    ),
    "space-in-version": b"GET /kv/a HTTP/ 1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_is_400_and_connection_closed(shared: ServerProcess, name: str) -> None:
    with raw_socket(shared) as sock:
        sock.sendall(MALFORMED[name])
        replies = read_responses(sock, 1)
        assert [r.status for r in replies] == [400], replies
        assert_closed_by_server(sock)
    assert _get_status_sync(shared, "after-malformed") == 404  # still serving others


def test_oversized_header_is_431(shared: ServerProcess) -> None:
    # 256 KiB of one header: larger than any sane limit, small enough to fit the
    # socket buffers so the reply is not lost to a reset while still sending.
    head = encode_request("GET", kv_path("big-header"), headers={"X-Big": "a" * 262_144})
    with raw_socket(shared) as sock:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        replies = read_responses(sock, 1)
    assert [r.status for r in replies] == [431], replies
    assert _get_status_sync(shared, "after-big-header") == 404


def _get_sync(server: ServerProcess, key: str) -> Response:
    with raw_socket(server) as sock:
        sock.sendall(encode_request("GET", kv_path(key), headers={"Connection": "close"}))
        (reply,) = read_responses(sock, 1)
    return reply


def _get_status_sync(server: ServerProcess, key: str) -> int:
    return _get_sync(server, key).status


# -- persistence -------------------------------------------------------------------


async def write_round(client: KVClient, round_: int, expected: dict[str, bytes | None]) -> None:
    """New keys, plus overwrites and deletes of the previous round's keys."""
    for i in range(25):
        key, value = f"r{round_}-k{i}", f"round {round_} value {i}".encode() + bytes([round_, i])
        assert (await client.put(key, value)).status == 200
        expected[key] = value
    if round_ == 0:
        return
    for i in range(0, 25, 3):
        key, value = f"r{round_ - 1}-k{i}", b"overwritten in round %d" % round_
        assert (await client.put(key, value)).status == 200
        expected[key] = value
    for i in range(1, 25, 5):
        key = f"r{round_ - 1}-k{i}"
        assert (await client.delete(key)).status == 200
        expected[key] = None


@pytest.mark.timeout(150)
async def test_data_survives_four_clean_restarts(make_server: ServerFactory) -> None:
    server = make_server()
    server.start()
    expected: dict[str, bytes | None] = {}
    for round_ in range(4):
        client = await KVClient.open(server.connect_host, server.port)
        await write_round(client, round_, expected)
        await client.close()

        assert server.terminate() == 0, server.stderr_text()
        server.start()
        client = await KVClient.open(server.connect_host, server.port)
        for key, value in expected.items():
            response = await client.get(key)
            if value is None:
                assert response.status == 404, f"round {round_}: deleted {key} came back"
            else:
                assert response.body == value, f"round {round_}: {key} is {response!r}"
        await client.close()
