"""The numbers behind every report the server gives on itself, whatever the protocol.

Theory of operation
-------------------
The request path pays almost nothing for this: it only increments plain integers
where answers are produced. Everything else is computed when someone asks:

* Reads found and missed, plain writes applied, writes refused before the
  committer: each front end's ``server.pipeline.Counters``.
* Records committed and writes the committer refused: its counters in
  ``Engine.stats()`` (one addition per group, not per write), which also holds every
  storage gauge and histogram without scanning the table (live bytes are therefore
  not tracked here; ``python -m storage stats DIR`` computes them offline).
* What only one protocol can count (HTTP's answers by method and status): that front
  end's own counters, shown through the ``FrontEndReport`` it registers.

``stats()`` takes one typed reading of all of it; ``metrics()`` renders that reading
in the Prometheus text format with prometheus_client (plus the standard ``process_*``
metrics), ``stats_document()`` as the JSON document, and ``unhealthy_reason()`` says
whether a write could succeed now. How a protocol answers with them (status codes,
content types) is the protocol's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from server.state import ServerState
from storage import Engine, EngineStats, Histogram, RecoveryReport


@dataclass(frozen=True, slots=True)
class ServerStats:
    """The server's side of a reading: uptime and connections."""

    uptime_seconds: float
    connections_open: int
    connections_max: int
    connections_rejected: int
    shutting_down: bool


@dataclass(frozen=True, slots=True)
class Stats:
    """One reading of everything the server reports on itself."""

    unhealthy_reason: str | None
    """Why a write could not succeed now; None when healthy."""
    server: ServerStats
    storage: EngineStats
    snapshot_age_seconds: float | None
    """Seconds since the newest snapshot was written, if known."""

    @property
    def healthy(self) -> bool:
        """A write could succeed now."""
        return self.unhealthy_reason is None


class FrontEndReport(Protocol):
    """A front end's own part of the reports (registered with ``Introspection.add``)."""

    def metrics(self, stats: Stats) -> Iterator[Metric]:
        """The front end's metric families for this reading."""

    def server_fields(self, stats: Stats) -> dict[str, Any]:
        """Fields added to the ``server`` object of the JSON document."""


def walkv_version() -> str:
    """walkv's installed version ("unknown" when run from a checkout not installed)."""
    try:
        return metadata.version("walkv")
    except metadata.PackageNotFoundError:
        return "unknown"


class Introspection:
    """Readings of one server and its engine, and their renderings."""

    def __init__(self, state: ServerState, engine: Engine) -> None:
        self._state = state
        self._engine = engine
        self._front_ends: list[FrontEndReport] = []
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)
        ProcessCollector(registry=self._registry)
        self._recovered_snapshot_at = _mtime(engine.recovery_report.snapshot)

    def add(self, front_end: FrontEndReport) -> None:
        """Show ``front_end``'s own numbers in every report from now on."""
        self._front_ends.append(front_end)

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

    def stats(self) -> Stats:
        """A reading now (cheap: counters only, no table scan)."""
        state = self._state
        storage = self._engine.stats()
        written = storage.checkpoints.last_written_at or self._recovered_snapshot_at
        return Stats(
            unhealthy_reason=self.unhealthy_reason(),
            server=ServerStats(
                uptime_seconds=time.monotonic() - state.started_at,
                connections_open=len(state.connections),
                connections_max=state.max_connections,
                connections_rejected=state.connections_rejected,
                shutting_down=state.shutting_down,
            ),
            storage=storage,
            snapshot_age_seconds=None if written is None else max(0.0, time.time() - written),
        )

    def metrics(self) -> bytes:
        """Every metric of a reading taken now, in the Prometheus text format."""
        return generate_latest(self._registry)

    def stats_document(self) -> dict[str, Any]:
        """A reading taken now as a JSON-ready document (``GET /stats``)."""
        stats = self.stats()
        server: dict[str, Any] = {
            "uptime_seconds": stats.server.uptime_seconds,
            "connections_open": stats.server.connections_open,
            "connections_max": stats.server.connections_max,
            "connections_rejected": stats.server.connections_rejected,
            "shutting_down": stats.server.shutting_down,
        }
        for front_end in self._front_ends:
            server.update(front_end.server_fields(stats))
        return {
            "healthy": stats.healthy,
            "unhealthy_reason": stats.unhealthy_reason,
            "server": server,
            "storage": {**stats.storage.to_dict(),
                        "snapshot_age_seconds": stats.snapshot_age_seconds},
        }

    def collect(self) -> Iterator[Metric]:
        """One reading as metric families (prometheus_client's collector interface)."""
        stats = self.stats()
        for front_end in self._front_ends:
            yield from front_end.metrics(stats)
        yield gauge("walkv_healthy", "1 while writes can succeed (see /healthz)",
                    int(stats.healthy))
        yield from _storage_metrics(stats)


def _mtime(path: str | None) -> float | None:
    if path is None:
        return None
    with contextlib.suppress(OSError):
        return os.stat(path).st_mtime
    return None


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    """A metric family with one gauge sample."""
    return GaugeMetricFamily(name, doc, value=value)


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    """A metric family with one counter sample (exposed as ``name_total``)."""
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, hist: Histogram) -> HistogramMetricFamily:
    buckets, running = [], 0
    for bound, count in zip(hist.bounds, hist.counts, strict=False):
        running += count
        buckets.append((repr(float(bound)), running))  # le="0.001", le="4.0"
    buckets.append(("+Inf", running + hist.counts[-1]))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.total)


def _storage_metrics(stats: Stats) -> Iterator[Metric]:
    s = stats.storage
    yield gauge("walkv_keys", "Keys in the store (expired ones count until swept)", s.keys)
    yield gauge("walkv_keys_expiring", "Keys with a deadline", s.expiring_keys)
    yield counter("walkv_operations_evaluated", "Transactions and listings evaluated in "
                  "commit order", s.operations)
    yield counter("walkv_expired_keys_reaped", "Expired keys deleted by the sweep", s.reaped)
    yield gauge("walkv_last_lsn", "LSN of the last committed record", s.last_lsn)
    yield counter("walkv_commit_groups", "Commit groups made durable (one write + one "
                  "fdatasync each)", s.groups)
    records = CounterMetricFamily("walkv_records_committed", "Writes committed, by op",
                                  labels=["op"])
    for op, n in s.committed.items():
        records.add_metric([op.name], n)
    yield records
    yield _histogram("walkv_group_writes", "Writes per commit group", s.group_size)
    yield _histogram("walkv_wal_sync_seconds", "Time of one commit group's WAL write + "
                     "fdatasync", s.sync)
    yield counter("walkv_wal_bytes_written", "WAL frame bytes written since start",
                  s.wal_bytes_written)
    yield gauge("walkv_wal_bytes_since_snapshot", "WAL bytes a restart would replay",
                s.checkpoints.wal_bytes_since_snapshot)
    yield gauge("walkv_wal_segments", "WAL segment files", s.segments)
    yield counter("walkv_no_space_groups", "Commit groups refused because the device was "
                  "full (507)", s.no_space_groups)
    yield gauge("walkv_storage_failed", "1 after a WAL write/fsync error (writes get 503 "
                "until restart)", int(s.failed is not None))
    yield gauge("walkv_storage_out_of_space", "1 while the device is full (writes get 507)",
                int(s.out_of_space))
    yield from _checkpoint_metrics(stats)
    yield from _recovery_metrics(s.recovery)


def _checkpoint_metrics(stats: Stats) -> Iterator[Metric]:
    c = stats.storage.checkpoints
    yield gauge("walkv_snapshots", "Snapshot files kept", len(c.snapshots))
    checkpoints = CounterMetricFamily("walkv_checkpoints", "Checkpoints finished since start, "
                                      "by result", labels=["result"])
    checkpoints.add_metric(["ok"], c.completed)
    checkpoints.add_metric(["failed"], c.failed)
    yield checkpoints
    yield gauge("walkv_checkpoint_in_progress", "1 while a snapshot is being written",
                int(c.running))
    yield gauge("walkv_checkpoint_last_duration_seconds", "Duration of the last completed "
                "checkpoint", c.last_duration_seconds)
    yield gauge("walkv_checkpoint_last_pause_seconds", "Commits paused to start the last "
                "checkpoint (WAL rotation, then fork or copy)", c.last_start_pause_seconds)
    yield gauge("walkv_snapshot_last_bytes", "Size of the last snapshot written", c.last_bytes)
    if stats.snapshot_age_seconds is not None:
        yield gauge("walkv_snapshot_age_seconds", "Seconds since the newest snapshot was "
                    "written", stats.snapshot_age_seconds)


def _recovery_metrics(r: RecoveryReport) -> Iterator[Metric]:
    yield gauge("walkv_recovery_duration_seconds", "Duration of the recovery at start",
                r.duration_s)
    yield gauge("walkv_recovery_records_replayed", "WAL records replayed at start",
                r.records_replayed)
    yield gauge("walkv_recovery_bytes_cut", "Bytes cut from the WAL at start (torn tail, "
                "preallocated zeros, point-in-time)", sum(c.length for c in r.cuts))
    yield gauge("walkv_recovery_snapshots_set_aside", "Damaged snapshots set aside at start",
                len(r.broken_snapshots))
