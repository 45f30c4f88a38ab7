"""What the benchmark sees of a running target from outside, besides the load itself.

- ``/stats``: the engine counters a target may serve (walkv does), for group commit;
- one-off HTTP requests: readiness after a restart, the checkpoint-triggering PUT;
- listing pages: ``GET /kv?limit=1000&start_after=<key>`` after the large load, one at
  a time on one keep-alive connection (``http.client``: nothing between the clock and
  the socket but reading the reply), from loaded keys chosen at random, the same for
  every target and round. The first listing is timed on its own: walkv folds freshly
  written keys into its key order when a listing first needs them. Each reply must be
  200 with a page of 1,000 keys in ascending order after the start key; a shorter page
  must end the keyspace (``next`` null, the greatest loaded key last);
- the server process: CPU time, RSS, and its children (walkv's checkpoint is a fork).

Every probe tolerates a target that does not serve or answer: it returns None (or 0)
and the report says n/a, because the ceiling and other targets need not offer it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import random
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import psutil

from harness.bench.model import GroupStats, ListingRun
from harness.client import REQUEST_ERRORS, REQUEST_TIMEOUT_S, request_blocking
from harness.load import key_name
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


LISTING_PAGES = 50
"""Pages timed after the first listing."""
LISTING_LIMIT = 1000
"""Items asked for per page (the route's default)."""
LISTING_SEED = 2024
"""Start keys are the same for every target and round."""
LISTING_TIMEOUT_S = 120.0
"""The first listing sorts every loaded key; on a busy 2-core machine that takes a while."""
NO_ROUTE_STATUSES = frozenset({404, 405})


class ListingError(Exception):
    """A page that was not a good answer; the message says how."""


def measure_listing(port: int, keys: int) -> ListingRun:
    """The first listing and LISTING_PAGES more, after random keys of ``keys`` loaded.

    See the module docstring. Every page is checked (``_check_page``); a target that
    answers the first one 404 or 405 has no listing route, which is not an error.
    """
    rng = random.Random(LISTING_SEED)
    starts = [key_name(rng.randrange(keys)).decode() for _ in range(LISTING_PAGES + 1)]
    times_ms: list[float] = []
    items = 0
    conn = http.client.HTTPConnection(HOST, port, timeout=LISTING_TIMEOUT_S)
    try:
        for index, start in enumerate(starts):
            status, body, elapsed_ms = _timed_get(conn, start)
            if index == 0 and status in NO_ROUTE_STATUSES:
                return ListingRun(LISTING_LIMIT, route=False)
            count = _check_page(status, body, start, keys)
            times_ms.append(elapsed_ms)
            items += count if index else 0  # the first listing is reported on its own
    except (OSError, http.client.HTTPException) as exc:
        return _partial(times_ms, items, f"listing request failed: {exc!r}")
    except ListingError as exc:
        return _partial(times_ms, items, str(exc))
    finally:
        conn.close()
    return _partial(times_ms, items, "")


def _timed_get(conn: http.client.HTTPConnection, start: str) -> tuple[int, bytes, float]:
    """GET one page after ``start``; status, body and ms from sending to the last byte."""
    path = f"/kv?limit={LISTING_LIMIT}&start_after={urllib.parse.quote(start, safe='')}"
    began = time.perf_counter_ns()
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, body, (time.perf_counter_ns() - began) / 1e6


def _check_page(status: int, body: bytes, start: str, keys: int) -> int:
    """The page's item count. Raises ListingError if it is not a good page."""
    if status != 200:
        raise ListingError(f"listing after {start} answered {status}: {body[:100]!r}")
    try:
        page = json.loads(body)
        names = [item["key"] for item in page["items"]]
        more = page["next"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ListingError(f"listing after {start}: not a page of keys ({exc!r})") from None
    if any(not isinstance(name, str) for name in names) or names != sorted(set(names)):
        raise ListingError(f"listing after {start}: keys not in ascending order")
    if names and names[0] <= start:
        raise ListingError(f"listing after {start} began at {names[0]}")
    if len(names) > LISTING_LIMIT or (len(names) < LISTING_LIMIT and more is not None):
        raise ListingError(f"listing after {start}: {len(names)} items, next {more!r}")
    if len(names) < LISTING_LIMIT and (names[-1] if names else start) != _greatest_key(keys):
        raise ListingError(f"listing after {start}: {len(names)} items, ending before the "
                           f"last key")
    return len(names)


@functools.cache
def _greatest_key(keys: int) -> str:
    """The last of ``keys`` loaded keys in byte order, where a listing ends."""
    return max(key_name(index) for index in range(keys)).decode()


def _partial(times_ms: list[float], items: int, error: str) -> ListingRun:
    """A ListingRun of what was measured before ``error`` (empty: all of it)."""
    return ListingRun(LISTING_LIMIT, route=True, first_ms=times_ms[0] if times_ms else None,
                      page_ms=times_ms[1:], items=items, error=error)


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
