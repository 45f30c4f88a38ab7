"""The performance goals: durable walkv against the ceiling fixture, measured in one run.

Each goal is checked per subject (every durable target but the ceiling) and says
what was measured, and PASS, MISS or n/a (not measured in this run, e.g. with
``--only``). The numbers come from ``harness.bench.fold``; the goals are reported,
never asserted. A ``--short`` run reduces every size, so its goals mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.bench.fold import CEILING, Folded, median
from harness.bench.model import Target


@dataclass(frozen=True)
class Goal:
    """One performance goal checked for one target."""

    name: str
    target: str
    measured: str
    status: str
    """PASS, MISS or n/a."""
    value: float | None


def _ratio_goal(folded: Folded, subject: str, op: str, conns: int, least: float,
                name: str) -> Goal:
    mine = folded.cells.get((subject, op, conns))
    ceiling = folded.cells.get((CEILING, op, conns))
    ratios = folded.paired_ratios(subject, CEILING, op, conns)
    if mine is None or ceiling is None or not ratios:
        return Goal(name, subject, "not measured", "n/a", None)
    # The median of per-round ratios: each round runs the targets back to back.
    ratio = median(ratios)
    spread = f"rounds {min(ratios):.2f}-{max(ratios):.2f}; " if len(ratios) > 1 else ""
    text = (f"{ratio:.2f}x ({spread}medians {mine.requests_per_s:,.0f} vs "
            f"{ceiling.requests_per_s:,.0f}/s)")
    return Goal(name, subject, text, "PASS" if ratio >= least else "MISS", ratio)


def _put1_goal(folded: Folded, subject: str, fdatasync_p50_ms: float) -> Goal:
    name = "PUT @1 conn: p50 within 50 us of one fdatasync"
    mine = folded.cells.get((subject, "put", 1))
    if mine is None:
        return Goal(name, subject, "not measured", "n/a", None)
    extra_us = (mine.p50_ms - fdatasync_p50_ms) * 1e3
    text = f"+{extra_us:.0f} us (p50 {mine.p50_ms:.3f} ms, fdatasync {fdatasync_p50_ms:.3f} ms)"
    return Goal(name, subject, text, "PASS" if extra_us <= 50 else "MISS", extra_us)


def _large_goals(folded: Folded, subject: str) -> list[Goal]:
    mine, ceiling = folded.large.get(subject), folded.large.get(CEILING)
    restart = Goal("restart after SIGKILL with 1M keys <= 1.0 s", subject, "not measured",
                   "n/a", None)
    if mine is not None and mine.restart_s is not None:
        restart = Goal(restart.name, subject, f"{mine.restart_s:.2f} s (max "
                       f"{mine.restart_max_s or 0:.2f} s)",
                       "PASS" if mine.restart_s <= 1.0 else "MISS", mine.restart_s)
    memory = Goal("RSS with 1M keys <= 1.1x ceiling", subject, "not measured", "n/a", None)
    if mine and ceiling and mine.rss_bytes and ceiling.rss_bytes:
        ratio = mine.rss_bytes / ceiling.rss_bytes
        memory = Goal(memory.name, subject, f"{ratio:.2f}x ({mine.rss_bytes / 2**20:,.0f} vs "
                      f"{ceiling.rss_bytes / 2**20:,.0f} MiB)",
                      "PASS" if ratio <= 1.1 else "MISS", ratio)
    stall = Goal("checkpoint of 1M keys adds < 5 ms to p99 GET", subject, "not measured",
                 "n/a", None)
    added = mine.p99_added_ms if mine is not None else None
    if mine is not None and added is not None:
        stall = Goal(stall.name, subject, f"{added:+.2f} ms ({mine.p99_without_ms:.2f} -> "
                     f"{mine.p99_with_ms:.2f} ms)", "PASS" if added < 5 else "MISS", added)
    return [restart, memory, stall]


def _burst_goal(folded: Folded, subject: str) -> Goal:
    name = "burst of 10,000 new-connection PUTs: no errors"
    burst = folded.bursts.get(subject)
    if burst is None:
        return Goal(name, subject, "not measured", "n/a", None)
    failed = burst.requests - burst.ok
    text = f"{burst.ok:,}/{burst.requests:,} ok in {burst.elapsed_s:.2f} s"
    return Goal(name, subject, text, "PASS" if failed == 0 else "MISS", float(failed))


def goals(folded: Folded, subject: str, fdatasync_p50_ms: float) -> list[Goal]:
    """Every performance goal for ``subject`` (a durable target) against the ceiling."""
    return [
        _ratio_goal(folded, subject, "put", 256, 0.85, "durable PUT @256 conns >= 0.85x ceiling"),
        _ratio_goal(folded, subject, "put", 16, 0.40, "durable PUT @16 conns >= 0.40x ceiling"),
        _put1_goal(folded, subject, fdatasync_p50_ms),
        _ratio_goal(folded, subject, "get", 16, 0.95, "GET @16 conns >= 0.95x ceiling"),
        *_large_goals(folded, subject),
        _burst_goal(folded, subject),
    ]


def subjects(targets: list[Target]) -> list[str]:
    """The targets goals apply to: durable ones other than the ceiling."""
    return [t.name for t in targets if t.durable and t.name != CEILING]
