"""Live introspection on the HTTP port: ``/metrics``, ``/stats`` and ``/healthz``.

Theory of operation
-------------------
The request path pays almost nothing for this: it only increments plain integers
where answers are produced. Everything else is computed when someone asks:

* GET hits and misses: ``ServerState.get_hits`` / ``get_misses`` (connection.py).
* Writes answered by their commit group: the committer's per-op counters
  (``records_by_op`` for 200, ``refused_by_outcome`` for 507 and 503), one addition
  per group, not per write.
* Every other answer (router errors, writes refused before the committer,
  introspection, malformed HTTP): ``RequestCounters.count`` on those cold paths.
* Storage gauges and histograms: ``Engine.stats()``, which reads counters and never
  scans the table (so live bytes are not tracked here; ``python -m storage stats DIR``
  computes them offline).

``/metrics`` is rendered by prometheus_client from a custom collector that reads all
of the above once per scrape (plus the standard ``process_*`` metrics);
``/stats`` is the same numbers as JSON plus the last recovery report; ``/healthz``
says whether a write could succeed now.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from server.commands import Endpoint
from storage import Engine

if TYPE_CHECKING:
    from server.app import ServerState

JSON: Final = b"application/json"
PROMETHEUS_TEXT: Final = b"text/plain; version=0.0.4; charset=utf-8"
"""The exposition format ``generate_latest`` writes (what every Prometheus reads)."""
TEXT: Final = b"text/plain; charset=utf-8"

_KNOWN_METHODS: Final = frozenset(
    {b"GET", b"PUT", b"DELETE", b"POST", b"PATCH", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE"})
# HTTP status of a write, by its commit group's outcome (as connection.py answers).
_OUTCOME_STATUS: Final = {"NO_SPACE": 507, "FAILED": 503}
# The HTTP method that carries each op (CLEAR is DELETE /clear).
_OP_METHOD: Final = {"PUT": "PUT", "DELETE": "DELETE", "CLEAR": "DELETE"}


class RequestCounters:
    """Answers counted on the cold paths, by (method, status)."""

    __slots__ = ("connections_rejected", "replies")

    def __init__(self) -> None:
        self.replies: dict[tuple[str, int], int] = {}
        self.connections_rejected = 0
        """Connections closed at once with 503 because the limit was reached."""

    def count(self, method: bytes, status: int) -> None:
        """One answer with ``status`` to a request with ``method`` (b"": unparsable)."""
        key = (method_label(method), status)
        self.replies[key] = self.replies.get(key, 0) + 1


def method_label(method: bytes) -> str:
    """The ``method`` label: a standard method, ``other``, or ``unknown`` (no request)."""
    if not method:
        return "unknown"
    return method.decode("ascii") if method in _KNOWN_METHODS else "other"


def requests_by_method_status(state: ServerState, storage: dict[str, Any]
                              ) -> dict[tuple[str, int], int]:
    """Every answer so far by (method, status), from the counters described above."""
    counts = dict(state.counters.replies)

    def add(method: str, status: int, n: int) -> None:
        if n:
            counts[(method, status)] = counts.get((method, status), 0) + n

    add("GET", 200, state.get_hits)
    add("GET", 404, state.get_misses)
    for op, n in storage["records_by_op"].items():
        add(_OP_METHOD[op], 200, n)
    for outcome, by_op in storage["refused_by_outcome"].items():
        for op, n in by_op.items():
            add(_OP_METHOD[op], _OUTCOME_STATUS[outcome], n)
    return counts


class Introspection:
    """Answers the introspection endpoints for one server."""

    def __init__(self, state: ServerState, engine: Engine) -> None:
        self._state = state
        self._engine = engine
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_WalkvCollector(self))
        ProcessCollector(registry=self._registry)
        self._recovered_snapshot_at = _mtime(engine.recovery_report.snapshot)

    def answer(self, endpoint: Endpoint) -> tuple[int, bytes, bytes]:
        """(status, body, content type) for ``endpoint``, computed now."""
        if endpoint is Endpoint.METRICS:
            return 200, generate_latest(self._registry), PROMETHEUS_TEXT
        if endpoint is Endpoint.STATS:
            return 200, json.dumps(self.stats(), indent=1).encode() + b"\n", JSON
        reason = self.unhealthy_reason()
        return (503, f"{reason}\n".encode(), TEXT) if reason else (200, b"ok\n", TEXT)

    def unhealthy_reason(self) -> str | None:
        """Why a write could not succeed now, or None when the server is healthy."""
        engine = self._engine
        if engine.failed is not None:
            return f"storage failed (writes refused until restart): {engine.failed}"
        if engine.out_of_space:
            return "no space left on device (writes refused with 507 until space is freed)"
        if self._state.shutting_down:
            return "shutting down"
        return None

    def snapshot_age(self, storage: dict[str, Any]) -> float | None:
        """Seconds since the newest snapshot was written, if known."""
        written = storage["snapshot_last_written_at"] or self._recovered_snapshot_at
        return None if written is None else max(0.0, time.time() - written)

    def stats(self) -> dict[str, Any]:
        """Everything /metrics shows, as JSON-ready data, plus the recovery report."""
        state = self._state
        storage = self._engine.stats().to_dict()
        requests = requests_by_method_status(state, storage)
        reason = self.unhealthy_reason()
        return {
            "healthy": reason is None,
            "unhealthy_reason": reason,
            "server": {
                "uptime_seconds": time.monotonic() - state.started_at,
                "connections_open": len(state.connections),
                "connections_max": state.max_connections,
                "connections_rejected": state.counters.connections_rejected,
                "shutting_down": state.shutting_down,
                "requests": [{"method": m, "status": s, "count": n}
                             for (m, s), n in sorted(requests.items())],
            },
            "storage": {**storage, "snapshot_age_seconds": self.snapshot_age(storage)},
        }


def _mtime(path: str | None) -> float | None:
    if path is None:
        return None
    with contextlib.suppress(OSError):
        return os.stat(path).st_mtime
    return None


class _WalkvCollector:
    """prometheus_client collector reading walkv's counters at scrape time."""

    def __init__(self, introspection: Introspection) -> None:
        self._intro = introspection

    def collect(self) -> Iterator[Metric]:
        stats = self._intro.stats()
        yield from _server_metrics(stats)
        yield from _storage_metrics(stats["storage"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, hist: dict[str, list[Any]], total: float
               ) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, count in zip(hist["bounds"], hist["counts"], strict=False):
        running += count
        buckets.append((repr(float(bound)), running))  # le="0.001", le="4.0"
    buckets.append(("+Inf", running + hist["counts"][-1]))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


def _server_metrics(stats: dict[str, Any]) -> Iterator[Metric]:
    server = stats["server"]
    requests = CounterMetricFamily("walkv_http_requests", "HTTP requests answered, by method "
                                   "and status", labels=["method", "status"])
    for entry in server["requests"]:
        requests.add_metric([entry["method"], str(entry["status"])], entry["count"])
    yield requests
    yield _gauge("walkv_http_connections_open", "Open client connections",
                 server["connections_open"])
    yield _gauge("walkv_http_connections_max", "Open connections allowed at once",
                 server["connections_max"])
    yield _counter("walkv_http_connections_rejected", "Connections refused with 503 at the "
                   "connection limit", server["connections_rejected"])
    yield _gauge("walkv_healthy", "1 while writes can succeed (see /healthz)",
                 int(stats["healthy"]))


def _storage_metrics(s: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("walkv_keys", "Keys in the store", s["keys"])
    yield _gauge("walkv_last_lsn", "LSN of the last committed record", s["last_lsn"])
    yield _counter("walkv_commit_groups", "Commit groups made durable (one write + one "
                   "fdatasync each)", s["groups"])
    records = CounterMetricFamily("walkv_records_committed", "Writes committed, by op",
                                  labels=["op"])
    for op, n in s["records_by_op"].items():
        records.add_metric([op], n)
    yield records
    yield _histogram("walkv_group_writes", "Writes per commit group", s["group_size"],
                     s["records"])
    yield _histogram("walkv_wal_sync_seconds", "Time of one commit group's WAL write + "
                     "fdatasync", s["fsync_latency"], s["fsync_seconds"])
    yield _counter("walkv_wal_bytes_written", "WAL frame bytes written since start",
                   s["wal_bytes_written"])
    yield _gauge("walkv_wal_bytes_since_snapshot", "WAL bytes a restart would replay",
                 s["wal_bytes_since_snapshot"])
    yield _gauge("walkv_wal_segments", "WAL segment files", s["segments"])
    yield _counter("walkv_no_space_groups", "Commit groups refused because the device was "
                   "full (507)", s["no_space_groups"])
    yield _gauge("walkv_storage_failed", "1 after a WAL write/fsync error (writes get 503 "
                 "until restart)", int(s["failed"] is not None))
    yield _gauge("walkv_storage_out_of_space", "1 while the device is full (writes get 507)",
                 int(s["out_of_space"]))
    yield from _checkpoint_metrics(s)
    yield from _recovery_metrics(s["recovery"])


def _checkpoint_metrics(s: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("walkv_snapshots", "Snapshot files kept", len(s["snapshots"]))
    checkpoints = CounterMetricFamily("walkv_checkpoints", "Checkpoints finished since start, "
                                      "by result", labels=["result"])
    checkpoints.add_metric(["ok"], s["checkpoints_completed"])
    checkpoints.add_metric(["failed"], s["checkpoints_failed"])
    yield checkpoints
    yield _gauge("walkv_checkpoint_in_progress", "1 while a snapshot is being written",
                 int(s["checkpoint_running"]))
    yield _gauge("walkv_checkpoint_last_duration_seconds", "Duration of the last completed "
                 "checkpoint", s["checkpoint_last_duration_seconds"])
    yield _gauge("walkv_checkpoint_last_pause_seconds", "Commits paused to start the last "
                 "checkpoint (WAL rotation, then fork or copy)",
                 s["checkpoint_last_start_pause_seconds"])
    yield _gauge("walkv_snapshot_last_bytes", "Size of the last snapshot written",
                 s["snapshot_last_bytes"])
    age = s["snapshot_age_seconds"]
    if age is not None:
        yield _gauge("walkv_snapshot_age_seconds", "Seconds since the newest snapshot was "
                     "written", age)


def _recovery_metrics(r: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge("walkv_recovery_duration_seconds", "Duration of the recovery at start",
                 r["duration_s"])
    yield _gauge("walkv_recovery_records_replayed", "WAL records replayed at start",
                 r["records_replayed"])
    yield _gauge("walkv_recovery_bytes_cut", "Bytes cut from the WAL at start (torn tail, "
                 "preallocated zeros, point-in-time)", sum(c["length"] for c in r["cuts"]))
    yield _gauge("walkv_recovery_snapshots_set_aside", "Damaged snapshots set aside at start",
                 len(r["broken_snapshots"]))
