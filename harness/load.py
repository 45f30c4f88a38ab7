"""Closed-loop load: N keep-alive connections issuing requests back to back.

Each connection sends its next request as soon as the previous reply arrives, for a
fixed time. Latency is measured per request with ``time.perf_counter_ns`` from just
before the write to the parsed reply, so it includes the client's own parsing, which
is small next to an fsync. One process, one event loop: at very high rates the
client's CPU becomes the limit, which the report cannot tell apart from the server's;
run it on its own core and compare with the server's CPU use.

``get`` and ``mix`` first write every key once (not measured) so reads hit.
``mix`` is half PUT, half GET.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field

from harness.client import REQUEST_ERRORS, Connection, kv_path


class LoadOp(enum.Enum):
    """Which requests a load run issues."""

    PUT = "put"
    GET = "get"
    MIX = "mix"


@dataclass(frozen=True)
class LoadConfig:
    """One load run. ``keys`` is the key-space size; values are ``value_bytes`` long."""

    host: str = "127.0.0.1"
    port: int = 8080
    connections: int = 16
    duration_s: float = 10.0
    op: LoadOp = LoadOp.PUT
    value_bytes: int = 100
    keys: int = 1000
    seed: int = 0


@dataclass
class LoadResult:
    """Raw measurements of one run; ``summary()`` turns them into the report."""

    elapsed_s: float
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> LoadSummary:
        """Throughput and latency percentiles."""
        ordered = sorted(self.latencies_ns)
        return LoadSummary(
            requests=len(ordered),
            elapsed_s=self.elapsed_s,
            requests_per_s=len(ordered) / self.elapsed_s if self.elapsed_s > 0 else 0.0,
            p50_ms=percentile_ms(ordered, 0.50),
            p99_ms=percentile_ms(ordered, 0.99),
            p999_ms=percentile_ms(ordered, 0.999),
            max_ms=ordered[-1] / 1e6 if ordered else 0.0,
            errors=sum(self.errors.values()),
            error_kinds=dict(self.errors),
        )


@dataclass(frozen=True)
class LoadSummary:
    """The numbers a load run reports (successful requests only in the latencies)."""

    requests: int
    elapsed_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int]

    def to_json(self) -> str:
        """One JSON object, for scripts."""
        return json.dumps(asdict(self), sort_keys=True)

    def to_text(self) -> str:
        """Human-readable report."""
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.error_kinds.items()))
        return (
            f"requests: {self.requests} in {self.elapsed_s:.2f} s "
            f"({self.requests_per_s:.0f} requests/s)\n"
            f"latency ms: p50 {self.p50_ms:.3f}  p99 {self.p99_ms:.3f}  "
            f"p99.9 {self.p999_ms:.3f}  max {self.max_ms:.3f}\n"
            f"errors: {self.errors}" + (f" ({kinds})" if kinds else "")
        )


def percentile_ms(ordered_ns: list[int], q: float) -> float:
    """The ``q`` quantile (nearest rank) of sorted nanosecond samples, in ms."""
    if not ordered_ns:
        return 0.0
    rank = min(len(ordered_ns) - 1, max(0, round(q * len(ordered_ns)) - 1))
    return ordered_ns[rank] / 1e6


KEY_TEMPLATE = "load-%d"
"""How load runs name key number N; the bench's load client and wrk scripts use it too."""


def key_name(index: int) -> bytes:
    """The key a load run uses for ``index``."""
    return (KEY_TEMPLATE % index).encode()


async def run_load(config: LoadConfig) -> LoadResult:
    """Prefill if reads are involved, then run the measured phase."""
    conns = await asyncio.gather(
        *(Connection.open(config.host, config.port) for _ in range(config.connections))
    )
    value = random.Random(config.seed).randbytes(config.value_bytes)
    try:
        if config.op is not LoadOp.PUT:
            await _prefill(conns, config.keys, value)
        return await _measure(conns, config, value)
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))


async def _prefill(conns: list[Connection], keys: int, value: bytes) -> None:
    async def fill(conn: Connection, start: int) -> None:
        for index in range(start, keys, len(conns)):
            response = await conn.request("PUT", kv_path(key_name(index)), value)
            if response.status != 200:
                raise RuntimeError(f"prefill PUT failed with status {response.status}")

    await asyncio.gather(*(fill(conn, i) for i, conn in enumerate(conns)))


async def _measure(conns: list[Connection], config: LoadConfig, value: bytes) -> LoadResult:
    result = LoadResult(elapsed_s=0.0)
    started = time.perf_counter_ns()
    deadline = started + int(config.duration_s * 1e9)
    await asyncio.gather(
        *(
            _worker(conn, config, value, deadline, result, random.Random(config.seed + i))
            for i, conn in enumerate(conns)
        )
    )
    result.elapsed_s = (time.perf_counter_ns() - started) / 1e9
    return result


async def _worker(
    conn: Connection,
    config: LoadConfig,
    value: bytes,
    deadline: int,
    result: LoadResult,
    rng: random.Random,
) -> None:
    """Back-to-back requests until the deadline; a broken connection ends the worker."""
    while time.perf_counter_ns() < deadline:
        path = kv_path(key_name(rng.randrange(config.keys)))
        is_put = config.op is LoadOp.PUT or (config.op is LoadOp.MIX and rng.random() < 0.5)
        t0 = time.perf_counter_ns()
        try:
            if is_put:
                response = await conn.request("PUT", path, value)
            else:
                response = await conn.request("GET", path)
        except REQUEST_ERRORS as exc:
            result.errors[type(exc).__name__] += 1
            return
        elapsed = time.perf_counter_ns() - t0
        if response.status == 200:
            result.latencies_ns.append(elapsed)
        else:
            result.errors[f"status {response.status}"] += 1
