"""The Redis-protocol bench's report: rounds folded, walkv/Redis ratios, goals, outputs.

Each (target, test, setting) is the median of its rounds, with the spread of
requests/s (half the range, as a percentage of the median). Ratios against Redis are
the median of per-round ratios: one round runs the targets back to back, so drift on
a shared machine cancels out. The goals (``RESP_GOALS``) are reported as PASS, MISS or
n/a (not measured), never asserted; a ``--short`` run's mean nothing.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.bench.fold import median
from harness.bench.goals import Goal
from harness.bench.model import RespResults, RespRun, Setting
from harness.bench.report import md_table

REDIS = "redis"
"""The name of the Redis target (``harness.bench.resp``)."""

RESP_GOALS: tuple[tuple[str, Setting, float], ...] = (
    ("SET", Setting(16), 1.0),
    ("SET", Setting(256), 1.0),
    ("SET", Setting(16, 16), 1.0),
    ("SET", Setting(1), 0.9),
    ("GET", Setting(16), 0.8),
)
"""(test, setting, least ratio of walkv's requests/s to Redis's with appendfsync always)."""


@dataclass(frozen=True)
class RespCell:
    """The median of one (target, test, setting) over its rounds."""

    target: str
    test: str
    connections: int
    pipeline: int
    rounds: int
    requests_per_s: float
    spread_pct: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu: float
    server_cpu: float


CellKey = tuple[str, str, Setting]


def fold_resp(runs: list[RespRun]) -> dict[CellKey, RespCell]:
    """Cells keyed by (target, test, setting)."""
    grouped: dict[CellKey, list[RespRun]] = defaultdict(list)
    for run in runs:
        grouped[(run.target, run.test, run.setting)].append(run)
    return {key: _cell(items) for key, items in grouped.items()}


def _cell(runs: list[RespRun]) -> RespCell:
    first = runs[0]
    rps = [run.requests_per_s for run in runs]
    middle = median(rps)
    return RespCell(
        target=first.target, test=first.test, connections=first.connections,
        pipeline=first.pipeline, rounds=len(runs), requests_per_s=middle,
        spread_pct=(max(rps) - min(rps)) / 2 / middle * 100 if middle else 0.0,
        p50_ms=median(run.p50_ms for run in runs), p99_ms=median(run.p99_ms for run in runs),
        max_ms=median(run.max_ms for run in runs),
        client_cpu=max(run.client_cpu for run in runs),
        server_cpu=median(run.server_cpu for run in runs),
    )


def paired_ratios(runs: list[RespRun], a: str, b: str, test: str, setting: Setting) -> list[float]:
    """a/b requests/s of every round that measured both, in round order."""
    by_round: dict[str, dict[int, float]] = defaultdict(dict)
    for run in runs:
        if run.test == test and run.setting == setting:
            by_round[run.target][run.round] = run.requests_per_s
    mine, other = by_round.get(a, {}), by_round.get(b, {})
    return [mine[r] / other[r] for r in sorted(mine) if other.get(r)]


def goal_name(test: str, setting: Setting, least: float) -> str:
    """``SET @16 conns >= 1.0x Redis (appendfsync always)``."""
    return f"{test} @{setting.label()} >= {least:.1f}x Redis (appendfsync always)"


def resp_goals(results: RespResults, subject: str) -> list[Goal]:
    """Every goal for ``subject`` (a walkv target) against Redis."""
    cells = fold_resp(results.runs)
    found = []
    for test, setting, least in RESP_GOALS:
        name = goal_name(test, setting, least)
        ratios = paired_ratios(results.runs, subject, REDIS, test, setting)
        mine, redis = cells.get((subject, test, setting)), cells.get((REDIS, test, setting))
        if not ratios or mine is None or redis is None:
            found.append(Goal(name, subject, "not measured", "n/a", None))
            continue
        ratio = median(ratios)
        spread = f"rounds {min(ratios):.2f}-{max(ratios):.2f}; " if len(ratios) > 1 else ""
        text = (f"{ratio:.2f}x ({spread}medians {mine.requests_per_s:,.0f} vs "
                f"{redis.requests_per_s:,.0f}/s)")
        found.append(Goal(name, subject, text, "PASS" if ratio >= least else "MISS", ratio))
    return found


def subjects(results: RespResults) -> list[str]:
    """The targets goals apply to: every one but Redis."""
    return [t.name for t in results.targets if t.name != REDIS]


# -- markdown ---------------------------------------------------------------------------------


def machine_section(results: RespResults) -> list[str]:
    """The header: machine, tools, targets and sizes."""
    f, s = results.facts, results.sizes
    letters = "".join("ABCD"[i] for i in range(len(results.targets)))
    busiest = max(results.runs, key=lambda run: run.client_cpu, default=None)
    busy = "" if busiest is None else (
        f"; busiest run used {busiest.client_cpu:.2f} of {f.cores} cores "
        f"({busiest.target} @{busiest.setting.label()})")
    rows = [
        ["CPU", f"{f.cpu_model}, {f.cores} cores"],
        ["kernel", f.kernel],
        ["filesystem (working dir)", f"{f.filesystem}: `{f.working_dir}`"],
        ["Python", f"{f.python}, uvloop {f.uvloop}"],
        ["Redis", f"{results.redis_version}: --appendonly yes --appendfsync always --save \"\""],
        ["load generator", f"{results.benchmark_version}{busy}"],
        ["fdatasync (128 B pwrite + fdatasync, preallocated file)",
         f"p50 {f.fdatasync_p50_ms:.3f} ms, p99 {f.fdatasync_p99_ms:.3f} ms"],
        ["targets", ", ".join(f"{'ABCD'[i]} = {t.name} (`{t.directory}`)"
                              for i, t in enumerate(results.targets))],
        ["sizes", f"-t set,get -d 100 -r 100000; -n sized for ~{s.duration_s:g} s of SETs "
         f"at a guessed rate: {_requests(results)}; rounds {' '.join([letters] * s.rounds)}"],
    ]
    return ["## Machine", "", *md_table(["", ""], rows)]


def _requests(results: RespResults) -> str:
    """``-n`` of each setting, as the runs used it."""
    counts = {run.setting: run.requests for run in results.runs}
    return ", ".join(f"{counts[setting]:,} @{setting.label()}"
                     for setting in results.sizes.settings() if setting in counts)


def goals_section(results: RespResults) -> list[str]:
    """Goals against Redis, one column per walkv target."""
    names = subjects(results)
    per_target = {name: resp_goals(results, name) for name in names}
    rows = [[goal.name, *(f"{per_target[n][i].status}: {per_target[n][i].measured}"
                          for n in names)]
            for i, goal in enumerate(per_target[names[0]])] if names else []
    lines = ["## Goals, measured against Redis (appendfsync always) in this run", ""]
    if results.mode == "short":
        lines += ["*Short mode: tiny runs; these rows only show that every measurement ran.*",
                  ""]
    return [*lines, *md_table(["goal", *names], rows)]


def throughput_section(results: RespResults) -> list[str]:
    """Requests/s and latency per test, setting and target."""
    cells = fold_resp(results.runs)
    rows = []
    for test in ("SET", "GET"):
        for setting in results.sizes.settings():
            for target in results.targets:
                cell = cells.get((target.name, test, setting))
                if cell is not None:
                    rows.append(_throughput_row(cell, setting))
    if not rows:
        return []
    header = ["test", "setting", "target", "req/s", "p50 ms", "p99 ms", "max ms",
              "client CPU", "server CPU"]
    return ["## Throughput and latency (redis-benchmark, 100-byte values)", "",
            *md_table(header, rows), "",
            "req/s is the median of the rounds (± half their range); latencies as "
            "redis-benchmark reports them; CPU in cores over the whole redis-benchmark "
            "run (SET and GET together)."]


def _throughput_row(cell: RespCell, setting: Setting) -> list[str]:
    rps = f"{cell.requests_per_s:,.0f}" + (f" ±{cell.spread_pct:.0f}%" if cell.rounds > 1 else "")
    return [cell.test, setting.label(), cell.target, rps, f"{cell.p50_ms:.3f}",
            f"{cell.p99_ms:.3f}", f"{cell.max_ms:.3f}", f"{cell.client_cpu:.2f}",
            f"{cell.server_cpu:.2f}"]


def ratio_section(results: RespResults, other: str, title: str) -> list[str]:
    """Per-round ratios of the first target to ``other``, per test and setting."""
    cells = fold_resp(results.runs)
    a = results.targets[0].name
    rows = []
    for test in ("SET", "GET"):
        for setting in results.sizes.settings():
            ratios = paired_ratios(results.runs, a, other, test, setting)
            mine, theirs = cells.get((a, test, setting)), cells.get((other, test, setting))
            if not ratios or mine is None or theirs is None:
                continue
            rounds = ", ".join(f"{r:.2f}" for r in ratios)
            rows.append([f"{test} @{setting.label()}", f"{mine.requests_per_s:,.0f}",
                         f"{theirs.requests_per_s:,.0f}",
                         f"{statistics.median(ratios):.2f}x ({rounds})",
                         f"{mine.p50_ms:.3f} / {theirs.p50_ms:.3f}"])
    if not rows:
        return []
    return [f"## {title}", "", *md_table(
        ["measurement", a, other, "ratio, median of rounds (each round)", "p50 ms"], rows)]


def render_resp_markdown(results: RespResults) -> str:
    """The whole report."""
    sections = [
        [f"# walkv benchmark over RESP, {results.started} ({results.mode})"],
        machine_section(results),
        goals_section(results),
        throughput_section(results),
        ratio_section(results, REDIS, f"{results.targets[0].name} / Redis (appendfsync always)"),
        ratio_section(results, "baseline", f"{results.targets[0].name} (A) vs baseline (B)")
        if any(t.name == "baseline" for t in results.targets) else [],
        ["## Problems", "", *(f"- {p}" for p in results.problems)] if results.problems else [],
    ]
    return "\n".join("\n".join(section) + "\n" for section in sections if section)


# -- JSON -------------------------------------------------------------------------------------


def resp_to_json(results: RespResults) -> dict[str, Any]:
    """Raw runs, folded cells and goals, as one JSON-ready dict."""
    data = asdict(results)
    data["protocol"] = "resp"
    data["targets"] = [{**asdict(t), "directory": str(t.directory)} for t in results.targets]
    data["summary"] = [asdict(cell) for cell in fold_resp(results.runs).values()]
    data["goals"] = [asdict(goal) for name in subjects(results)
                     for goal in resp_goals(results, name)]
    return data


def write_resp_outputs(results: RespResults, out: Path) -> None:
    """``results.json`` and ``results.md``."""
    (out / "results.json").write_text(json.dumps(resp_to_json(results), indent=1,
                                                 sort_keys=True) + "\n")
    (out / "results.md").write_text(render_resp_markdown(results))
