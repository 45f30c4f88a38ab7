"""The Redis protocol from outside, with the clients people use: redis-py (its default
RESP3 handshake and ``protocol=2``), ``redis-cli`` (interactive, and ``--pipe`` mass
insertion), ``redis-benchmark``; one keyspace shared with HTTP; pipelining, MULTI/EXEC
and WATCH; malformed streams; and SIGKILL with an oracle of acknowledged writes.

``redis-cli`` and ``redis-benchmark`` come from Debian's ``redis-tools`` (``.ci/run``
installs it); without them those tests skip and say why.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.client import request_blocking
from harness.proc import ServerProcess, free_port

pytestmark = pytest.mark.timeout(180)

ServerFactory = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def shared(target: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("resp")
    with ServerProcess(target, tmp / "data", log_dir=tmp / "logs", name="resp",
                       resp_port=free_port()) as server:
        server.start()
        yield server


def client(server: ServerProcess, **kwargs: Any) -> redis.Redis:
    host, port = server.resp_address
    return redis.Redis(host=host, port=port, socket_timeout=30, **kwargs)


def raw(server: ServerProcess, data: bytes, expect_close: bool = False) -> bytes:
    """Send ``data`` at once on a new connection; everything received until the
    server closes (``expect_close``) or 0.5 s pass without more."""
    with socket.create_connection(server.resp_address, timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(0.5 if not expect_close else 10)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


# -- redis-py -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [3, 2])
def test_redis_py_strings_keys_and_expiry(shared: ServerProcess, protocol: int) -> None:
    r = client(shared, protocol=protocol)
    p = f"py{protocol}:"
    assert r.set(p + "k", "v") is True
    assert r.get(p + "k") == b"v"
    assert r.set(p + "k", "w", nx=True) is None
    assert r.set(p + "k", "w", xx=True, get=True) == b"v"
    assert r.incr(p + "n") == 1 and r.incrby(p + "n", 41) == 42 and r.decr(p + "n") == 41
    assert r.incrbyfloat(p + "f", 10.5) == 10.5
    assert r.mset({p + "a": "1", p + "b": "2"}) is True
    assert r.mget(p + "a", p + "b", p + "missing") == [b"1", b"2", None]
    assert r.expire(p + "a", 100) is True and 98 <= r.ttl(p + "a") <= 100
    assert r.persist(p + "a") is True and r.ttl(p + "a") == -1
    assert r.exists(p + "a", p + "b", p + "missing") == 2
    assert r.delete(p + "a", p + "b", p + "missing") == 2
    assert r.append(p + "s", "hello") == 5 and r.getrange(p + "s", 1, 3) == b"ell"
    assert r.rename(p + "s", p + "t") is True and r.get(p + "t") == b"hello"
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr(p + "t")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.lpush(p + "list", 1)
    assert r.type(p + "t") == b"string"
    assert sorted(r.scan_iter(match=p + "*", count=3)) == sorted(r.keys(p + "*"))


@pytest.mark.parametrize("protocol", [3, 2])
def test_redis_py_pipelines_and_transactions(shared: ServerProcess, protocol: int) -> None:
    r = client(shared, protocol=protocol)
    p = f"tx{protocol}:"
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"{p}{i}", i)
    pipe.get(f"{p}199")
    assert pipe.execute()[-1] == b"199"
    with r.pipeline() as tx:
        tx.set(p + "x", 1).incr(p + "x").get(p + "x").incr(p + "199x")
        assert tx.execute() == [True, 2, b"2", 1]
    # A runtime error inside EXEC fails alone; the others apply.
    r.set(p + "text", "abc")
    with r.pipeline() as tx:
        tx.set(p + "y", 1).incr(p + "text").incr(p + "y")
        results = tx.execute(raise_on_error=False)
    assert results[0] is True and isinstance(results[1], redis.ResponseError)
    assert results[2] == 2 and r.get(p + "y") == b"2"


def test_watch_aborts_exec_when_another_client_changed_the_key(shared: ServerProcess) -> None:
    r, other = client(shared), client(shared)
    r.set("w:k", "1")
    with r.pipeline() as tx:
        tx.watch("w:k")
        assert tx.get("w:k") == b"1"
        other.set("w:k", "2")
        tx.multi()
        tx.set("w:k", "3")
        with pytest.raises(redis.WatchError):
            tx.execute()
    assert r.get("w:k") == b"2"
    with r.pipeline() as tx:
        tx.watch("w:k")
        tx.multi()
        tx.set("w:k", "4")
        assert tx.execute() == [True]
    assert r.get("w:k") == b"4"


def test_concurrent_increments_all_count(shared: ServerProcess) -> None:
    def work() -> None:
        r = client(shared)
        for _ in range(200):
            r.incr("count:n")
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client(shared).get("count:n") == b"1600"


# -- one keyspace for both protocols ----------------------------------------------------------
def test_a_key_written_over_resp_reads_over_http_and_back(shared: ServerProcess) -> None:
    r = client(shared)
    r.set("both:resp", "from redis")
    response = request_blocking(shared.connect_host, shared.port, "GET", "/kv/both:resp")
    assert (response.status, response.body) == (200, b"from redis")
    put = request_blocking(shared.connect_host, shared.port, "PUT", "/kv/both:http", b"from http")
    assert put.status == 200
    assert r.get("both:http") == b"from http"


def test_metrics_count_resp_commands_by_name_and_outcome(shared: ServerProcess) -> None:
    r = client(shared)
    r.set("m:k", "v")
    with pytest.raises(redis.ResponseError):
        r.incr("m:k")  # redis-py sends INCRBY m:k 1
    text = request_blocking(shared.connect_host, shared.port, "GET", "/metrics").body.decode()
    errors = re.search(r'walkv_resp_commands_total\{command="incrby",outcome="error"\} (\S+)',
                       text)
    assert errors is not None and float(errors.group(1)) >= 1, text
    assert 'walkv_resp_commands_total{command="set",outcome="ok"}' in text


# -- the wire ---------------------------------------------------------------------------------
def test_inline_and_pipelined_commands_read_their_own_writes(shared: ServerProcess) -> None:
    stream = (b"PING\r\n"
              b"*3\r\n$3\r\nSET\r\n$5\r\nwire1\r\n$1\r\na\r\n"
              b"*2\r\n$4\r\nINCR\r\n$5\r\nwire2\r\n"
              b"*2\r\n$3\r\nGET\r\n$5\r\nwire1\r\n"
              b"GET wire2\r\n")
    assert raw(shared, stream) == b"+PONG\r\n+OK\r\n:1\r\n$1\r\na\r\n$1\r\n1\r\n"


def test_a_malformed_stream_gets_a_protocol_error_and_is_closed(shared: ServerProcess) -> None:
    assert raw(shared, b"*1\r\n$abc\r\nPING\r\n", expect_close=True) == (
        b"-ERR Protocol error: invalid bulk length\r\n")
    assert raw(shared, b"PING\r\n*2\r\n+x\r\n", expect_close=True) == (
        b"+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n")


def test_hello_switches_protocols_and_refuses_unknown_ones(shared: ServerProcess) -> None:
    reply = raw(shared, b"HELLO 3\r\nGET hello:none\r\nHELLO 4\r\n")
    assert reply.startswith(b"%7\r\n") and reply.endswith(
        b"_\r\n-NOPROTO unsupported protocol version\r\n")


# -- crashes ----------------------------------------------------------------------------------
def test_acknowledged_resp_writes_survive_sigkill_and_multi_key_writes_are_atomic(
        make_server: ServerFactory) -> None:
    server = make_server(resp_port=free_port())
    server.start()
    acked: dict[str, int] = {}
    stop = threading.Event()

    def writer(worker: int) -> None:
        r = client(server, protocol=2)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                keys = {f"atom{worker}:{j}": i for j in range(5)}
                with r.pipeline() as tx:
                    tx.mset(keys)
                    tx.incr(f"n{worker}")
                    tx.execute()
                acked[f"n{worker}"] = i
        except (redis.ConnectionError, redis.TimeoutError):
            pass
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for t in threads:
        t.join()
    server.start()
    r = client(server)
    for worker in range(4):
        count = int(r.get(f"n{worker}") or 0)
        assert count >= acked.get(f"n{worker}", 0)
        values = {r.get(f"atom{worker}:{j}") for j in range(5)}
        assert len(values) == 1, f"a torn MULTI/EXEC: {values}"
        assert values == {None if count == 0 else str(count).encode()}


# -- redis-cli and redis-benchmark ---------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package redis-tools; .ci/run installs "
                    "it as root): this real-client check did not run")
    return path


def test_redis_cli_pipe_mass_insertion(shared: ServerProcess, tmp_path: Path) -> None:
    cli = _tool("redis-cli")
    lines = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
        len(k), k, len(v), v) for k, v in ((b"pipe:%d" % i, b"v%d" % i) for i in range(5000)))
    host, port = shared.resp_address
    done = subprocess.run([cli, "-h", host, "-p", str(port), "--pipe"], input=lines,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert b"errors: 0, replies: 5000" in done.stdout
    assert client(shared).get("pipe:4999") == b"v4999"


def test_redis_cli_interactive_session(shared: ServerProcess) -> None:
    cli = _tool("redis-cli")
    script = shutil.which("script")
    if script is None:
        pytest.skip("script(1) is not installed: the interactive redis-cli check did not run")
    host, port = shared.resp_address
    session = "SET cli:k hello\nGET cli:k\nINCR cli:n\nQUIT\n"
    # TERM=dumb: redis-cli's line editor then reads plain lines instead of asking the
    # terminal where its cursor is (a question nobody here would answer).
    done = subprocess.run([script, "-qec", f"{cli} -h {host} -p {port}", "/dev/null"],
                          input=session.encode(), capture_output=True, timeout=30, check=False,
                          env={**os.environ, "TERM": "dumb"})
    out = done.stdout.decode(errors="replace")
    assert "OK" in out and '"hello"' in out and "(integer) 1" in out, out


def test_redis_benchmark_runs_without_an_error_reply(shared: ServerProcess) -> None:
    bench = _tool("redis-benchmark")
    host, port = shared.resp_address
    done = subprocess.run([bench, "-h", host, "-p", str(port), "-t", "ping,set,get,incr,mset",
                           "-n", "2000", "-c", "8", "-q"], capture_output=True, timeout=120,
                          check=False, env={**os.environ, "TERM": "dumb"})
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out + done.stderr.decode(errors="replace")
    for test in ("PING_INLINE", "SET", "GET", "INCR", "MSET"):
        assert f"{test}" in out and "requests per second" in out, out


def test_both_protocols_share_one_connection_limit(make_server: ServerFactory) -> None:
    server = make_server(resp_port=free_port(), extra_args=["--max-connections=2"])
    server.start()
    http_address = (server.connect_host, server.port)
    with _admitted(server.resp_address, b"PING\r\n", b"+PONG") as resp, \
            _admitted(http_address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                      b"HTTP/1.1 200"):
        # A third connection, whatever its protocol, is over the shared limit: it is
        # answered at once and closed (nothing is sent, so nothing unread resets it).
        assert _first_words(server.resp_address) == b"-ERR max number of clients reached\r\n"
        assert _first_words(http_address).startswith(b"HTTP/1.1 503")
        resp.sendall(b"PING\r\n")
        assert resp.recv(100) == b"+PONG\r\n"


def _admitted(address: tuple[str, int], probe: bytes, answer: bytes) -> socket.socket:
    """A connection the server kept (its answer to ``probe`` starts with ``answer``),
    retried while the readiness probes' connections are still being closed."""
    deadline = time.monotonic() + 10
    while True:
        sock = socket.create_connection(address, timeout=10)
        try:
            sock.sendall(probe)
            if sock.recv(1000).startswith(answer):
                return sock
        except OSError:
            pass
        sock.close()
        assert time.monotonic() < deadline, f"{address} never admitted a connection"
        time.sleep(0.1)


def _first_words(address: tuple[str, int]) -> bytes:
    """What a server says to a new connection before closing it."""
    with socket.create_connection(address, timeout=10) as sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
