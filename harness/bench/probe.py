"""What the benchmark sees of a running target from outside, besides the load itself.

- ``/stats``: the engine counters a target may serve (walkv does), for group commit;
- one-off HTTP requests: readiness after a restart, the checkpoint-triggering PUT;
- the server process: CPU time, RSS, and its children (walkv's checkpoint is a fork).

Every probe tolerates a target that does not serve or answer: it returns None (or 0)
and the report says n/a, because the ceiling and other targets need not offer it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from harness.bench.model import GroupStats
from harness.client import REQUEST_ERRORS, REQUEST_TIMEOUT_S, request_blocking
from harness.proc import ServerProcess

HOST = "127.0.0.1"
STATS_KEYS = ("groups", "records", "max_group", "fsync_seconds")
"""The counters that identify an engine's stats object in ``GET /stats``."""
CHILD_POLL_S = 0.005


class ChildWatcher:
    """Notes when the server has child processes (walkv's checkpoint is a fork).

    Reads ``/proc/PID/task/*/children`` every few ms: cheap, unlike scanning every
    process for its parent, so the watching itself does not disturb the latencies.
    """

    def __init__(self, server: ServerProcess) -> None:
        self._pid = server.pid
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-children", daemon=True)

    def __enter__(self) -> ChildWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(CHILD_POLL_S):
            if self._pid is not None and child_pids(self._pid):
                now = time.monotonic()
                self.first_seen = self.first_seen or now
                self.last_seen = now


def child_pids(pid: int) -> list[int]:
    """PIDs of ``pid``'s children (any thread may have forked them)."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                pids.extend(int(p) for p in (task / "children").read_text().split())
    return pids


def wait_children_gone(server: ServerProcess, limit_s: float) -> None:
    """Wait (bounded) until the server has no child process, e.g. a checkpoint."""
    deadline = time.monotonic() + limit_s
    pid = server.pid
    while pid is not None and child_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def fetch_stats(port: int) -> dict[str, Any] | None:
    """The engine counters from ``GET /stats``, or None if the target serves none.

    Accepts them at the top level or in one nested object (walkv puts them under
    ``storage``), recognised by the keys group commit needs.
    """
    status, body = http_request(port, "GET", "/stats")
    if status != 200:
        return None
    try:
        return find_engine_stats(json.loads(body))
    except ValueError:
        return None


def find_engine_stats(data: object) -> dict[str, Any] | None:
    """The object holding every STATS_KEYS: ``data`` itself or one of its values."""
    candidates = [data, *(data.values() if isinstance(data, dict) else ())]
    for item in candidates:
        if isinstance(item, dict) and all(key in item for key in STATS_KEYS):
            return item
    return None


def group_stats(
    before: dict[str, Any] | None, after: dict[str, Any] | None, elapsed_s: float
) -> GroupStats | None:
    """Group commit between two ``/stats`` readings (None without writes or stats)."""
    if before is None or after is None:
        return None
    fsyncs = json_int(after["groups"]) - json_int(before["groups"])
    writes = json_int(after["records"]) - json_int(before["records"])
    if fsyncs <= 0:
        return None
    fsync_s = float(after["fsync_seconds"]) - float(before["fsync_seconds"])
    return GroupStats(
        fsyncs=fsyncs, writes=writes, mean_group=writes / fsyncs,
        max_group=json_int(after["max_group"]), fsyncs_per_s=fsyncs / max(elapsed_s, 1e-9),
        mean_fsync_ms=fsync_s / fsyncs * 1e3,
    )


def http_request(port: int, method: str, path: str, body: bytes = b"",
                 timeout: float = REQUEST_TIMEOUT_S) -> tuple[int | None, bytes]:
    """One request on a new connection; ``(None, b"")`` if it failed.

    A target that is down, restarting or misbehaving is an outcome to record here,
    not an error: the callers probe, poll and compare.
    """
    try:
        response = request_blocking(HOST, port, method, path, body, timeout=timeout)
    except REQUEST_ERRORS:
        return None, b""
    return response.status, response.body


def get_ok(port: int, path: str) -> bool:
    """True if ``GET path`` answers 200."""
    return http_request(port, "GET", path)[0] == 200


def put_value(port: int, path: str, size: int) -> int | None:
    """PUT a ``size``-byte value; the status, or None if the request failed."""
    return http_request(port, "PUT", path, b"c" * size)[0]


def first_reply(server: ServerProcess, path: str, deadline: float) -> tuple[int, float] | None:
    """Poll ``GET path`` every 2 ms until any reply; ``(status, monotonic time)``.

    A benchmark has to poll here: the thing measured is when a client outside the
    process first gets an answer. None if the process exits or the deadline passes.
    """
    while time.monotonic() < deadline and server.running:
        status, _ = http_request(server.port, "GET", path,
                                 timeout=max(0.01, deadline - time.monotonic()))
        if status is not None:
            return status, time.monotonic()
        time.sleep(0.002)
    return None


def process_cpu_s(server: ServerProcess) -> float:
    """User + system CPU seconds of the server process (all its threads) so far."""
    if server.pid is None:
        return 0.0
    try:
        times = psutil.Process(server.pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def rss_bytes(server: ServerProcess) -> int | None:
    """Resident set size of the server process (run.sh execs it, so the leader)."""
    if server.pid is None:
        return None
    try:
        return int(psutil.Process(server.pid).memory_info().rss)
    except psutil.Error:
        return None


def json_int(value: object) -> int:
    """A JSON number as an int; 0 for anything else (a field a target does not serve)."""
    return int(value) if isinstance(value, int | float) else 0


def json_float(value: object) -> float:
    """A JSON number as a float; 0.0 for anything else."""
    return float(value) if isinstance(value, int | float) else 0.0
