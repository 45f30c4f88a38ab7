"""What the benchmark measures, as plain records (the JSON file is their ``asdict``).

One record per measurement and round; ``harness.bench.fold`` folds rounds into
medians. Times are in milliseconds or seconds as the field name says, rates per
second, CPU in cores (1.0 = one core busy for the whole run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.load import LoadSummary


@dataclass(frozen=True)
class Target:
    """A server to measure: a directory with a CONTRACT.md ``run.sh``."""

    name: str
    directory: Path
    extra_args: tuple[str, ...] = ()
    durable: bool = True
    """False for the ceiling and ``--unsafe-no-fsync`` series (no goals apply)."""


@dataclass(frozen=True)
class Sizes:
    """How big and long each measurement is (full run or ``--short``)."""

    duration_s: float
    connections: tuple[int, ...]
    get_keys: int
    large_keys: int
    burst_requests: int
    restarts: int
    checkpoint_window_s: float
    fdatasync_samples: int
    rounds: int


@dataclass(frozen=True)
class GroupStats:
    """Group commit over one measured run, from the target's ``GET /stats``."""

    fsyncs: int
    writes: int
    mean_group: float
    max_group: int
    """Largest group since the server started (it starts fresh for each run)."""
    fsyncs_per_s: float
    mean_fsync_ms: float


@dataclass(frozen=True)
class ThroughputRun:
    """One closed-loop run: ``op`` at ``connections`` keep-alive connections."""

    target: str
    round: int
    op: str
    connections: int
    client: str
    summary: LoadSummary
    """What the load generator measured (requests, latency percentiles, errors)."""
    client_cpu: float
    server_cpu: float
    groups: GroupStats | None = None


@dataclass(frozen=True)
class BurstRun:
    """``requests`` PUTs started at once, each on its own new connection."""

    target: str
    round: int
    requests: int
    ok: int
    elapsed_s: float
    failures: dict[str, int]
    client_cpu: float


@dataclass(frozen=True)
class CheckpointRun:
    """GET latency at 16 connections without, then during, a checkpoint."""

    keys: int
    p99_without_ms: float
    p99_with_ms: float
    p999_without_ms: float
    p999_with_ms: float
    max_without_ms: float
    max_with_ms: float
    rps_without: float
    rps_with: float
    checkpoint_seconds: float | None
    """How long the checkpoint's child process lived (None: not seen, thread mode)."""
    pause_ms: float | None
    """The start pause the target reports in ``/stats`` (None: not served)."""
    note: str = ""


@dataclass(frozen=True)
class ListingRun:
    """Pages of ``GET /kv?limit=N&start_after=<random loaded key>``, one at a time."""

    limit: int
    route: bool
    """False: the target answered 404 or 405 (it has no listing route)."""
    first_ms: float | None = None
    """The first listing after the load, timed on its own (walkv sorts new keys then)."""
    page_ms: list[float] = field(default_factory=list)
    """Each following page, from sending the request to the reply's last byte."""
    items: int = 0
    """Items in the pages of ``page_ms``."""
    error: str = ""
    """Why the listing stopped early: a bad status or page, a failed request."""


@dataclass(frozen=True)
class LargeRun:
    """The 1,000,000-key measurements: memory, listing, restart after SIGKILL, checkpoint."""

    target: str
    round: int
    keys: int
    load_s: float
    rss_bytes: int | None
    restart_s: list[float] = field(default_factory=list)
    restart_note: str = ""
    checkpoint: CheckpointRun | None = None
    checkpoint_note: str = ""
    listing: ListingRun | None = None


@dataclass(frozen=True)
class MachineFacts:
    """The machine, printed at the top of every report."""

    cpu_model: str
    cores: int
    kernel: str
    filesystem: str
    working_dir: str
    python: str
    uvloop: str
    httptools: str
    wrk: str | None
    load_generator: str
    fdatasync_p50_ms: float
    fdatasync_p99_ms: float


@dataclass
class BenchResults:
    """Everything one ``python -m harness bench`` run measured."""

    started: str
    mode: str
    facts: MachineFacts
    sizes: Sizes
    targets: list[Target]
    throughput: list[ThroughputRun] = field(default_factory=list)
    bursts: list[BurstRun] = field(default_factory=list)
    large: list[LargeRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Measurements that could not run (a target failed to start, ...)."""


# -- the Redis-protocol bench (``bench --protocol resp``) ------------------------------------


@dataclass(frozen=True)
class Setting:
    """How redis-benchmark loads a server: connections, and requests pipelined on each."""

    connections: int
    pipeline: int = 1

    def label(self) -> str:
        """``16 conns``, or ``16 conns -P 16``."""
        text = f"{self.connections} conn" + ("s" if self.connections > 1 else "")
        return text + (f" -P {self.pipeline}" if self.pipeline > 1 else "")


@dataclass(frozen=True)
class RespSizes:
    """How long and how many rounds (full run or ``--short``)."""

    duration_s: float
    """Each SET test lasts about this long (redis-benchmark's ``-n`` is sized for it)."""
    connections: tuple[int, ...]
    rounds: int
    fdatasync_samples: int
    pipelined: Setting = Setting(16, 16)
    """The one pipelined setting, run after the plain ones."""

    def settings(self) -> list[Setting]:
        """Every connection count unpipelined, then the pipelined setting."""
        return [Setting(c) for c in self.connections] + [self.pipelined]


@dataclass(frozen=True)
class RespRun:
    """One test (SET or GET) of one redis-benchmark run against one target."""

    target: str
    round: int
    test: str
    connections: int
    pipeline: int
    requests: int
    requests_per_s: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float
    """redis-benchmark's CPU in cores over its whole run (both tests)."""
    server_cpu: float
    """The server's CPU in cores over the whole run (both tests)."""

    @property
    def setting(self) -> Setting:
        """The connections and pipelining this ran with."""
        return Setting(self.connections, self.pipeline)


@dataclass
class RespResults:
    """Everything one ``bench --protocol resp`` run measured."""

    started: str
    mode: str
    facts: MachineFacts
    redis_version: str
    benchmark_version: str
    sizes: RespSizes
    targets: list[Target]
    runs: list[RespRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Measurements that could not run (a target failed to start, ...)."""
