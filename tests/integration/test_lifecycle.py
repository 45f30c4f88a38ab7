"""Starting and stopping (CONTRACT.md section 1) as an operator or harness sees it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.client import KVClient, kv_path, request_once
from harness.crash.workload import RandomWrites, fetch_state
from harness.oracle import Oracle
from harness.proc import ServerProcess, free_port

ServerFactory = Callable[..., ServerProcess]

pytestmark = pytest.mark.timeout(90)

REFUSAL_DEADLINE_S = 5.0  # "within a few seconds" for a refused start


def wait_for_refusal(server: ServerProcess) -> tuple[int, float]:
    """Spawn a server that must refuse to start; return (exit status, seconds)."""
    started = time.monotonic()
    server.spawn()
    try:
        status = server.wait(timeout=REFUSAL_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"still running {REFUSAL_DEADLINE_S:.0f} s after start:\n{server.stderr_text()}"
        )
    return status, time.monotonic() - started


def stderr_lines(server: ServerProcess) -> list[str]:
    """Non-empty stderr lines, after checking there is no Python traceback."""
    text = server.stderr_text()
    assert "Traceback" not in text, f"traceback instead of one clear line:\n{text}"
    return [line for line in text.splitlines() if line.strip()]


def the_error_line(server: ServerProcess, *needles: str) -> str:
    """The one stderr line that explains the refusal: it mentions one of ``needles``
    and is the last thing printed (earlier start-up log lines are allowed)."""
    lines = stderr_lines(server)
    matching = [line for line in lines if any(n.lower() in line.lower() for n in needles)]
    assert len(matching) == 1, f"want one line naming {needles}, got {matching} in {lines}"
    assert lines[-1] == matching[0], f"the error is not the last line: {lines}"
    return matching[0]


async def test_sigterm_under_load_exits_0_and_keeps_acknowledged_writes(
    server: ServerProcess,
) -> None:
    keys = [b"term-%03d" % i for i in range(200)]
    oracle = Oracle()
    writes = RandomWrites(server.connect_host, server.port, oracle, keys, clients=16, seed=7)
    await writes.start()
    await asyncio.sleep(1.5)
    started = time.monotonic()
    # Writers keep going while the server drains; the stop runs in a thread.
    status = await asyncio.to_thread(server.terminate, 15.0)
    stop_seconds = time.monotonic() - started
    writes.stop()
    await writes.join()

    assert status == 0, f"exit status {status} after SIGTERM:\n{server.stderr_text()}"
    assert stop_seconds < 15.0
    assert writes.stats.acked > 0
    await asyncio.to_thread(server.start)
    report = oracle.check(await fetch_state(server.connect_host, server.port, keys))
    assert report.ok, report.summary()


async def test_sigint_exits_0_and_keeps_data(server: ServerProcess) -> None:
    client = await KVClient.open(server.connect_host, server.port)
    assert (await client.put("int-key", b"survives SIGINT")).status == 200
    await client.close()
    assert server.pid is not None
    os.killpg(server.pid, signal.SIGINT)
    assert await asyncio.to_thread(server.wait, 15.0) == 0
    await asyncio.to_thread(server.start)
    response = await request_once(server.connect_host, server.port, "GET", kv_path("int-key"))
    assert response.body == b"survives SIGINT"


async def test_second_server_on_same_directory_refuses_naming_the_lock(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    first = make_server(tmp_path / "shared-dir", name="first")
    first.start()
    await request_once(first.connect_host, first.port, "PUT", kv_path("owner"), b"first")

    second = make_server(tmp_path / "shared-dir", name="second")
    status, seconds = wait_for_refusal(second)
    assert status != 0
    the_error_line(second, "LOCK")

    assert first.running, "the first server died when the second one started"
    response = await request_once(first.connect_host, first.port, "GET", kv_path("owner"))
    assert (response.status, response.body) == (200, b"first")
    assert seconds < REFUSAL_DEADLINE_S


def test_unknown_flag_exits_nonzero_with_one_error_line(make_server: ServerFactory) -> None:
    server = make_server(extra_args=["--no-such-flag=1"])
    status, _ = wait_for_refusal(server)
    assert status != 0
    the_error_line(server, "--no-such-flag")
    assert len(stderr_lines(server)) == 1, "argument errors come before any other output"


def test_port_in_use_exits_nonzero_with_a_clear_line(make_server: ServerFactory) -> None:
    port = free_port()
    with socket.socket() as squatter:  # holds the port, listening, like another server
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        server = make_server(port=port)
        status, _ = wait_for_refusal(server)
    assert status != 0
    the_error_line(server, str(port), "in use")


def test_working_dir_that_is_a_file_exits_nonzero_with_a_clear_line(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_bytes(b"a file where the store should be")
    server = make_server(working_dir=not_a_dir)
    status, _ = wait_for_refusal(server)
    assert status != 0
    assert "cannot open working directory" in the_error_line(server, "is not a directory")
    assert not_a_dir.read_bytes() == b"a file where the store should be"


async def test_restart_on_same_port_one_second_after_sigkill_binds_at_once(
    server: ServerProcess,
) -> None:
    # Open connections at the kill leave server-side sockets in FIN_WAIT/TIME_WAIT;
    # a listener without SO_REUSEADDR could not bind the port again for a minute.
    clients = [await KVClient.open(server.connect_host, server.port) for _ in range(8)]
    for i, client in enumerate(clients):
        assert (await client.put(f"rebind-{i}", b"x")).status == 200
    server.kill()
    for client in clients:
        await client.close()
    await asyncio.sleep(1.0)
    ready = await asyncio.to_thread(server.start)
    assert ready < 10.0
    response = await request_once(server.connect_host, server.port, "GET", kv_path("rebind-7"))
    assert response.status == 200


async def test_missing_working_directory_is_created(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "not" / "there" / "yet"
    server = make_server(directory)
    server.start()
    assert directory.is_dir()
    response = await request_once(server.connect_host, server.port, "PUT", kv_path("k"), b"v")
    assert response.status == 200
    assert any(directory.iterdir()), "nothing written to the working directory"


async def test_port_zero_reports_the_chosen_port(make_server: ServerFactory) -> None:
    server = make_server(port=0)
    server.start()  # learns the port from "listening on http://HOST:PORT"
    assert server.port != 0
    response = await request_once(server.connect_host, server.port, "GET", kv_path("none"))
    assert response.status == 404


async def test_server_writes_nothing_into_the_checkout(make_server: ServerFactory) -> None:
    server = make_server()
    since = time.time()
    server.start()
    await request_once(server.connect_host, server.port, "PUT", kv_path("k"), b"v")
    server.kill()
    server.start()
    assert server.terminate() == 0
    assert files_written_since(server.target, since) == []


def files_written_since(root: Path, since: float) -> list[str]:
    """Files under ``root`` modified after ``since``, ignoring the venv, VCS and caches.

    Comparing modification times rather than a listing keeps the test meaningful while
    people edit the sources next to it.
    """
    skip = {".venv", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}
    found: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in skip and not d.endswith(".egg-info")]
        for name in files:
            path = Path(directory, name)
            if path.stat().st_mtime >= since:
                found.append(str(path.relative_to(root)))
    return found
