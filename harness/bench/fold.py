"""Fold a benchmark's rounds into one number per measurement (the median).

A measurement run in several rounds (A B A B ...) is reported as the median of its
rounds, with the spread of requests/s (half the range, as a percentage of the
median) so a reader can tell a real difference from noise on a shared machine. The
raw rounds stay in the JSON file as they were measured.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.bench.model import BenchResults, BurstRun, LargeRun, ListingRun, ThroughputRun
from harness.load import percentile_ms

CEILING = "ceiling"
OPS = ("put", "get", "mix")
OP_TITLES = {"put": "PUT (new keys)", "get": "GET", "mix": "50/50 GET/PUT"}


@dataclass(frozen=True)
class Cell:
    """The median of one throughput measurement over its rounds."""

    target: str
    op: str
    connections: int
    rounds: int
    requests_per_s: float
    spread_pct: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    client: str
    client_cpu: float
    server_cpu: float
    mean_group: float | None
    max_group: int | None
    fsyncs_per_s: float | None


def median(values: Iterable[float]) -> float:
    """Median of the values (0.0 for none)."""
    items = list(values)
    return statistics.median(items) if items else 0.0


def fold_cell(runs: list[ThroughputRun]) -> Cell:
    """One Cell from the rounds of one (target, op, connections)."""
    first = runs[0]
    rps = [run.summary.requests_per_s for run in runs]
    middle = median(rps)
    spread = (max(rps) - min(rps)) / 2 / middle * 100 if middle else 0.0
    groups = [run.groups for run in runs if run.groups is not None]
    return Cell(
        target=first.target, op=first.op, connections=first.connections, rounds=len(runs),
        requests_per_s=middle, spread_pct=spread,
        p50_ms=median(run.summary.p50_ms for run in runs),
        p99_ms=median(run.summary.p99_ms for run in runs),
        p999_ms=median(run.summary.p999_ms for run in runs),
        errors=sum(run.summary.errors for run in runs),
        client=first.client, client_cpu=max(run.client_cpu for run in runs),
        server_cpu=median(run.server_cpu for run in runs),
        mean_group=median(g.mean_group for g in groups) if groups else None,
        max_group=max(g.max_group for g in groups) if groups else None,
        fsyncs_per_s=median(g.fsyncs_per_s for g in groups) if groups else None,
    )


def fold_throughput(runs: list[ThroughputRun]) -> dict[tuple[str, str, int], Cell]:
    """Cells keyed by (target, op, connections)."""
    grouped: dict[tuple[str, str, int], list[ThroughputRun]] = defaultdict(list)
    for run in runs:
        grouped[(run.target, run.op, run.connections)].append(run)
    return {key: fold_cell(items) for key, items in grouped.items()}


NO_LISTING_ROUTE = "n/a: no listing route"


@dataclass(frozen=True)
class ListingCell:
    """A target's listing pages, every round's pooled; times None when none were timed."""

    limit: int
    pages: int
    first_ms: float | None
    """Median over the rounds of the first listing after the load."""
    median_ms: float | None
    p90_ms: float | None
    """Nearest rank, like the load clients' percentiles."""
    max_ms: float | None
    note: str
    """NO_LISTING_ROUTE, or why some round's listing stopped early."""


def fold_listing(runs: list[ListingRun]) -> ListingCell:
    """One ListingCell from a target's rounds."""
    pages_ms = [ms for run in runs for ms in run.page_ms]
    errors = sorted({run.error for run in runs} - {""})
    note = "; ".join(errors) or ("" if any(run.route for run in runs) else NO_LISTING_ROUTE)
    ordered_ns = sorted(round(ms * 1e6) for ms in pages_ms)
    return ListingCell(
        limit=runs[0].limit, pages=len(pages_ms),
        first_ms=_maybe_median([run.first_ms for run in runs]),
        median_ms=median(pages_ms) if pages_ms else None,
        p90_ms=percentile_ms(ordered_ns, 0.9) if pages_ms else None,
        max_ms=max(pages_ms, default=None), note=note,
    )


@dataclass(frozen=True)
class LargeCell:
    """Medians of the 1,000,000-key measurements of one target."""

    target: str
    keys: int
    rss_bytes: float | None
    restart_s: float | None
    restart_max_s: float | None
    restart_note: str
    p99_without_ms: float | None
    p99_with_ms: float | None
    max_without_ms: float | None
    max_with_ms: float | None
    checkpoint_s: float | None
    pause_ms: float | None
    checkpoint_note: str
    listing: ListingCell | None = None

    @property
    def p99_added_ms(self) -> float | None:
        """What the checkpoint added to p99 GET latency."""
        if self.p99_with_ms is None or self.p99_without_ms is None:
            return None
        return self.p99_with_ms - self.p99_without_ms


def _maybe_median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return median(present) if present else None


def fold_large(runs: list[LargeRun]) -> LargeCell:
    """One LargeCell from a target's rounds."""
    restarts = [seconds for run in runs for seconds in run.restart_s]
    checks = [run.checkpoint for run in runs if run.checkpoint is not None]
    notes = {run.checkpoint_note for run in runs} | {c.note for c in checks}
    listings = [run.listing for run in runs if run.listing is not None]
    return LargeCell(
        target=runs[0].target, keys=runs[0].keys,
        rss_bytes=_maybe_median([run.rss_bytes for run in runs]),
        restart_s=median(restarts) if restarts else None,
        restart_max_s=max(restarts) if restarts else None,
        restart_note="; ".join(sorted({run.restart_note for run in runs} - {""})),
        p99_without_ms=_maybe_median([c.p99_without_ms for c in checks]),
        p99_with_ms=_maybe_median([c.p99_with_ms for c in checks]),
        max_without_ms=_maybe_median([c.max_without_ms for c in checks]),
        max_with_ms=_maybe_median([c.max_with_ms for c in checks]),
        checkpoint_s=_maybe_median([c.checkpoint_seconds for c in checks]),
        pause_ms=_maybe_median([c.pause_ms for c in checks]),
        checkpoint_note="; ".join(sorted(notes - {""})),
        listing=fold_listing(listings) if listings else None,
    )


def fold_by_target(runs: list[Any], fold: Callable[[list[Any]], Any]) -> dict[str, Any]:
    """``fold`` applied to the runs of each target."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        grouped[run.target].append(run)
    return {target: fold(items) for target, items in grouped.items()}


@dataclass(frozen=True)
class BurstCell:
    """A target's bursts: worst round's successes and median time."""

    target: str
    requests: int
    ok: int
    elapsed_s: float
    failures: dict[str, int]


def fold_burst(runs: list[BurstRun]) -> BurstCell:
    """One BurstCell from a target's rounds (failures summed)."""
    failures: dict[str, int] = defaultdict(int)
    for run in runs:
        for kind, count in run.failures.items():
            failures[kind] += count
    return BurstCell(runs[0].target, runs[0].requests, min(run.ok for run in runs),
                     median(run.elapsed_s for run in runs), dict(failures))


@dataclass(frozen=True)
class Folded:
    """Everything the report shows, rounds folded."""

    cells: dict[tuple[str, str, int], Cell]
    large: dict[str, LargeCell]
    bursts: dict[str, BurstCell]
    by_round: dict[tuple[str, str, int], dict[int, float]]
    """Requests/s of each round, keyed like ``cells``: for ratios of runs made side by
    side (one round runs every target in turn), which drift on a shared machine
    affects far less than a ratio of medians taken minutes apart."""

    def paired_ratios(self, a: str, b: str, op: str, conns: int) -> list[float]:
        """A/B requests/s of every round that measured both, in round order."""
        mine = self.by_round.get((a, op, conns), {})
        other = self.by_round.get((b, op, conns), {})
        return [mine[r] / other[r] for r in sorted(mine) if other.get(r)]


def fold(results: BenchResults) -> Folded:
    """Fold every measurement of ``results``."""
    return Folded(
        cells=fold_throughput(results.throughput),
        large=fold_by_target(results.large, fold_large),
        bursts=fold_by_target(results.bursts, fold_burst),
        by_round=_by_round(results.throughput),
    )


def _by_round(runs: list[ThroughputRun]) -> dict[tuple[str, str, int], dict[int, float]]:
    rounds: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for run in runs:
        rounds[(run.target, run.op, run.connections)][run.round] = run.summary.requests_per_s
    return dict(rounds)
