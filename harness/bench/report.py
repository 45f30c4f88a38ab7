"""Write a benchmark's results: the markdown report and the JSON file.

The markdown starts with the machine, then the goals, then one table per kind of
measurement (medians of the rounds, see ``harness.bench.fold``), then A/B ratios
when a baseline ran. The JSON holds every raw round, the folded cells and the goals.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.bench.fold import OP_TITLES, OPS, Cell, Folded, LargeCell, fold
from harness.bench.goals import goals, subjects
from harness.bench.model import BenchResults, ThroughputRun


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table: the header line, the rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, fmt)


def machine_section(results: BenchResults) -> list[str]:
    """The header: machine facts and sizes."""
    f, s = results.facts, results.sizes
    rounds = " ".join("ABCD"[: len(results.targets)] * s.rounds)
    rows = [
        ["CPU", f"{f.cpu_model}, {f.cores} cores"],
        ["kernel", f.kernel],
        ["filesystem (working dir)", f"{f.filesystem}: `{f.working_dir}`"],
        ["Python", f"{f.python}, uvloop {f.uvloop}, httptools {f.httptools}"],
        ["load generator", _load_generator(results)],
        ["fdatasync (128 B pwrite + fdatasync, preallocated file)",
         f"p50 {f.fdatasync_p50_ms:.3f} ms, p99 {f.fdatasync_p99_ms:.3f} ms"],
        ["targets", ", ".join(f"{'ABCD'[i]} = {t.name} (`{t.directory}`"
                              + (" " + " ".join(t.extra_args) if t.extra_args else "") + ")"
                              for i, t in enumerate(results.targets))],
        ["sizes", f"{s.duration_s:g} s per run, rounds {rounds}, connections "
         f"{', '.join(map(str, s.connections))}, GET key space {s.get_keys:,}, "
         f"large {s.large_keys:,} keys, burst {s.burst_requests:,}"],
    ]
    return ["## Machine", "", *md_table(["", ""], rows)]


def _load_generator(results: BenchResults) -> str:
    """Which client ran, and the most CPU it used in any run (is it the bottleneck?)."""
    f = results.facts
    builtin = "built-in (harness/bench/loadclient.py)"
    name = f"wrk ({f.wrk})" if f.load_generator == "wrk" else builtin
    busiest = max(results.throughput, key=lambda run: run.client_cpu, default=None)
    busy = "" if busiest is None else (
        f"; busiest client run used {busiest.client_cpu:.2f} of {f.cores} cores "
        f"({busiest.target} {busiest.op} @{busiest.connections})")
    return f"{name}{busy}; preload and burst: built-in"


def goals_section(results: BenchResults, folded: Folded) -> list[str]:
    """Goals vs the ceiling, one column per durable target."""
    names = subjects(results.targets)
    if not names:
        return []
    per_target = {name: goals(folded, name, results.facts.fdatasync_p50_ms) for name in names}
    rows = []
    for index, goal in enumerate(per_target[names[0]]):
        cells = [f"{per_target[n][index].status}: {per_target[n][index].measured}" for n in names]
        rows.append([goal.name, *cells])
    title = "## Goals, measured against the ceiling in this run"
    lines = [title, ""]
    if results.mode == "short":
        lines += ["*Short mode: sizes and durations are reduced; these rows only show that "
                  "every measurement ran.*", ""]
    return [*lines, *md_table(["goal", *names], rows)]


def throughput_section(results: BenchResults, folded: Folded) -> list[str]:
    """Requests/s and latency for every op, connection count and target."""
    header = ["op", "conns", "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
              "writes/fsync mean (max)", "fsyncs/s", "client CPU", "server CPU"]
    rows = []
    for op in OPS:
        for conns in results.sizes.connections:
            for target in results.targets:
                cell = folded.cells.get((target.name, op, conns))
                if cell is not None:
                    rows.append(_throughput_row(cell))
    if not rows:
        return []
    return ["## Throughput and latency (keep-alive connections, 100-byte values)", "",
            *md_table(header, rows), "",
            "req/s is the median of the rounds (± half their range); CPU in cores "
            "(1.00 = one core all the time); writes/fsync n/a: no writes, or the target "
            "serves no `/stats`."]


def _throughput_row(cell: Cell) -> list[str]:
    rps = f"{cell.requests_per_s:,.0f}" + (f" ±{cell.spread_pct:.0f}%" if cell.rounds > 1
                                            else "")
    groups = "n/a" if cell.mean_group is None else f"{cell.mean_group:,.1f} ({cell.max_group:,})"
    return [OP_TITLES[cell.op], str(cell.connections), cell.target, rps, f"{cell.p50_ms:.3f}",
            f"{cell.p99_ms:.3f}", f"{cell.p999_ms:.3f}", f"{cell.errors:,}", groups,
            _num(cell.fsyncs_per_s), f"{cell.client_cpu:.2f} {cell.client}",
            f"{cell.server_cpu:.2f}"]


def burst_section(folded: Folded) -> list[str]:
    """The new-connection bursts."""
    rows = []
    for burst in folded.bursts.values():
        failures = ", ".join(f"{k}: {n}" for k, n in sorted(burst.failures.items())) or "none"
        rows.append([burst.target, f"{burst.ok:,}/{burst.requests:,}", f"{burst.elapsed_s:.2f}",
                     failures])
    if not rows:
        return []
    return ["## Burst: PUTs started at once, each on its own new connection", "",
            *md_table(["target", "answered 200", "seconds", "failures (all rounds)"], rows)]


def large_section(folded: Folded) -> list[str]:
    """Memory, restart and checkpoint stall with the large key count."""
    rows = []
    for cell in filter(_state_measured, folded.large.values()):
        rss = "n/a" if cell.rss_bytes is None else f"{cell.rss_bytes / 2**20:,.0f}"
        restart = (cell.restart_note or "n/a") if cell.restart_s is None else (
            f"{cell.restart_s:.2f} (max {cell.restart_max_s or 0:.2f})")
        stall = cell.checkpoint_note or "n/a"
        if cell.p99_added_ms is not None:
            stall = (f"{cell.p99_without_ms:.2f} -> {cell.p99_with_ms:.2f} "
                     f"({cell.p99_added_ms:+.2f}); max {_num(cell.max_without_ms, '.1f')} -> "
                     f"{_num(cell.max_with_ms, '.1f')}")
        ckpt = _num(cell.checkpoint_s, ".2f") + (f", pause {cell.pause_ms:.1f} ms"
                                                  if cell.pause_ms is not None else "")
        rows.append([cell.target, f"{cell.keys:,}", rss, restart, stall, ckpt])
    if not rows:
        return []
    notes = [f"- {c.target}: {c.checkpoint_note}" for c in folded.large.values()
             if c.checkpoint_note and c.p99_added_ms is not None]
    return ["## Large key count: memory, restart, checkpoint stall", "",
            *md_table(["target", "keys", "RSS MiB", "restart s (median, max)",
                     "GET p99 ms @16 conns without -> with checkpoint (added); max ms",
                     "checkpoint s"], rows), "",
            "Restart: SIGKILL of the process group, 1 s pause, then from spawning run.sh to "
            "the first 200 for a key written before the kill.", *notes]


def _state_measured(cell: LargeCell) -> bool:
    """Whether memory, restart or checkpoint ran (not only the listing)."""
    return (cell.rss_bytes is not None or cell.restart_s is not None or bool(cell.restart_note)
            or cell.p99_with_ms is not None or bool(cell.checkpoint_note))


def listing_section(folded: Folded) -> list[str]:
    """Listing latency with the large key count."""
    rows = []
    for cell in folded.large.values():
        listing = cell.listing
        if listing is None:
            continue
        first = listing.note if listing.first_ms is None else f"{listing.first_ms:,.1f}"
        pages = "n/a" if listing.median_ms is None else f"{listing.pages:,}"
        rows.append([cell.target, f"{cell.keys:,}", first, pages,
                     _num(listing.median_ms, ".2f"), _num(listing.p90_ms, ".2f"),
                     _num(listing.max_ms, ".2f")])
    if not rows:
        return []
    limit = next(c.listing.limit for c in folded.large.values() if c.listing is not None)
    notes = [f"- {c.target}: {c.listing.note}" for c in folded.large.values()
             if c.listing is not None and c.listing.note and c.listing.first_ms is not None]
    return [f"## Listing: `GET /kv?limit={limit}&start_after=<random loaded key>`", "",
            *md_table(["target", "keys", "first listing ms", "pages", "median ms", "p90 ms",
                     "max ms"], rows), "",
            "One keep-alive connection, one request at a time, right after the load; each "
            f"page must hold {limit:,} keys in order (fewer only at the end of the keyspace). "
            "The first listing is timed on its own: walkv builds its key order then.",
            *notes]


def baseline_section(results: BenchResults, folded: Folded) -> list[str]:
    """A / B ratios when a baseline target ran."""
    if len(results.targets) < 2 or results.targets[1].name != "baseline":
        return []
    a, b = results.targets[0].name, "baseline"
    rows = []
    for op in OPS:
        for conns in results.sizes.connections:
            ca, cb = folded.cells.get((a, op, conns)), folded.cells.get((b, op, conns))
            if ca is None or cb is None:
                continue
            rows.append([f"{OP_TITLES[op]} @{conns}", f"{ca.requests_per_s:,.0f}",
                         f"{cb.requests_per_s:,.0f}", _ratio(ca.requests_per_s, cb.requests_per_s),
                         _ratio(ca.p99_ms, cb.p99_ms)])
    la, lb = folded.large.get(a), folded.large.get(b)
    if la is not None and lb is not None:
        rows += _large_ratios(la, lb)
    if not rows:
        return []
    return [f"## {a} (A) vs baseline (B)", "",
            *md_table(["measurement", "A", "B", "A/B (req/s or value)", "A/B p99"], rows)]


def _large_ratios(la: LargeCell, lb: LargeCell) -> list[list[str]]:
    """A / B rows of the large key count's measurements that ran."""
    rows = []
    if _state_measured(la) or _state_measured(lb):
        rows.append(["RSS, large", _num(la.rss_bytes and la.rss_bytes / 2**20),
                     _num(lb.rss_bytes and lb.rss_bytes / 2**20),
                     _ratio(la.rss_bytes, lb.rss_bytes), ""])
        rows.append(["restart s", _num(la.restart_s, ".2f"), _num(lb.restart_s, ".2f"),
                     _ratio(la.restart_s, lb.restart_s), ""])
    pa, pb = (cell.listing.median_ms if cell.listing else None for cell in (la, lb))
    if pa is not None or pb is not None:
        rows.append(["listing page ms (median)", _num(pa, ".2f"), _num(pb, ".2f"),
                     _ratio(pa, pb), ""])
    return rows


def _ratio(a: float | None, b: float | None) -> str:
    return "n/a" if not a or not b else f"{a / b:.2f}x"


def render_markdown(results: BenchResults, plot_name: str | None) -> str:
    """The whole report."""
    folded = fold(results)
    title = f"# walkv benchmark, {results.started} ({results.mode})"
    sections = [
        [title],
        machine_section(results),
        goals_section(results, folded),
        throughput_section(results, folded),
        burst_section(folded),
        large_section(folded),
        listing_section(folded),
        baseline_section(results, folded),
        [f"![latency vs throughput]({plot_name})"] if plot_name else [],
        ["## Problems", "", *(f"- {p}" for p in results.problems)] if results.problems else [],
    ]
    return "\n".join("\n".join(section) + "\n" for section in sections if section)


# -- JSON -----------------------------------------------------------------------------


def _flat_run(run: ThroughputRun) -> dict[str, Any]:
    """One round as a flat record: the load summary's fields beside the run's own."""
    record = asdict(run)
    record.update(record.pop("summary"))
    return record


def to_json(results: BenchResults) -> dict[str, Any]:
    """Raw rounds, folded cells and goals, as one JSON-ready dict."""
    folded = fold(results)
    data = asdict(results)
    data["targets"] = [{**asdict(t), "directory": str(t.directory)} for t in results.targets]
    data["throughput"] = [_flat_run(run) for run in results.throughput]
    data["summary"] = {
        "throughput": [asdict(cell) for cell in folded.cells.values()],
        "large": [{**asdict(c), "p99_added_ms": c.p99_added_ms} for c in folded.large.values()],
        "bursts": [asdict(burst) for burst in folded.bursts.values()],
    }
    data["goals"] = [asdict(goal) for name in subjects(results.targets)
                     for goal in goals(folded, name, results.facts.fdatasync_p50_ms)]
    return data


def write_json(results: BenchResults, path: Path) -> None:
    """Write ``to_json(results)`` to ``path``."""
    path.write_text(json.dumps(to_json(results), indent=1, sort_keys=True) + "\n")
