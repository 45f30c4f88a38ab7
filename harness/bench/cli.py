"""``python -m harness bench``: measure walkv (and others) the same way, from outside.

Targets are directories with a CONTRACT.md ``run.sh``: this checkout (A, or
``--target DIR``), optionally ``--baseline DIR`` (B), and the ceiling fixture
``harness/bench/ceiling`` (a bare uvloop + httptools dict server, the yardstick the
goals are ratios of). ``--also-unsafe`` adds A with ``--unsafe-no-fsync`` to the write
measurements, to show what durability costs on the same code.

Order: every measurement runs each target once per round, in turn (A B C A B C ...),
so drift on a shared machine hits every target alike; rounds are folded into
medians by ``harness.bench.fold``. Each run starts its server on a fresh working
directory under ``OUT/work`` (on the disk being measured, never /tmp, which may be
tmpfs) and removes it afterwards.

``--protocol resp`` measures walkv's Redis-protocol port against a real Redis with
``appendfsync always`` instead, with redis-benchmark (``harness.bench.resp``).

Outputs in ``--out`` (default ``./bench-results/<timestamp>/``): ``results.md``
(also printed), ``results.json`` and ``latency.png``, plus every server's and
client's log in ``logs/``. The exit status is 1 only if some measurement could not
run at all; results are never judged by time here (goals are reported, not asserted).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from harness.bench.fold import CEILING, fold_listing
from harness.bench.loadgen import wrk_available
from harness.bench.machine import machine_facts
from harness.bench.model import BenchResults, ListingRun, Sizes, Target
from harness.bench.plot import write_plot
from harness.bench.report import render_markdown, write_json
from harness.bench.resp import resp_bench_command
from harness.bench.run import LARGE_PARTS, RunContext, Runner
from harness.burst import raise_nofile_limit
from harness.errors import BenchError, HarnessError
from harness.proc import REPO, bootstrap_target

CEILING_DIR = Path(__file__).resolve().parent / "ceiling"
"""The ceiling target: its ``run.sh`` starts ``harness.bench.ceiling.server``."""

FULL = Sizes(duration_s=5.0, connections=(1, 16, 256), get_keys=100_000,
             large_keys=1_000_000, burst_requests=10_000, restarts=3,
             checkpoint_window_s=10.0, fdatasync_samples=2000, rounds=2)
SHORT = Sizes(duration_s=1.0, connections=(1, 16, 256), get_keys=5_000, large_keys=20_000,
              burst_requests=1_000, restarts=1, checkpoint_window_s=1.5,
              fdatasync_samples=200, rounds=1)
"""For CI: every measurement runs, small and short (about half a minute per target)."""

THROUGHPUT_OPS = ("put", "get", "mix")
PARTS = (*THROUGHPUT_OPS, "burst", *sorted(LARGE_PARTS))
WRITE_OPS = frozenset({"put", "mix"})


@dataclass(frozen=True)
class BenchOptions:
    """One bench run, as the command line asked for it."""

    target: Path = REPO
    baseline: Path | None = None
    ceiling: bool = True
    also_unsafe: bool = False
    mode: str = "full"
    sizes: Sizes = FULL
    only: frozenset[str] = frozenset(PARTS)
    client: str = "auto"
    out: Path | None = None
    keep_data: bool = False


def build_targets(options: BenchOptions) -> list[Target]:
    """A, then the baseline, the ceiling and the unsafe series, as asked."""
    main_dir = options.target.resolve()
    name = "walkv" if main_dir == REPO else main_dir.name
    if main_dir == CEILING_DIR:
        return [Target(CEILING, CEILING_DIR, durable=False)]
    targets = [Target(name, main_dir)]
    if options.baseline is not None:
        targets.append(Target("baseline", options.baseline.resolve()))
    if options.ceiling:
        targets.append(Target(CEILING, CEILING_DIR, durable=False))
    if options.also_unsafe:
        targets.append(Target(f"{name}-no-fsync", main_dir, ("--unsafe-no-fsync",), False))
    return targets


def choose_client(choice: str) -> str:
    """``wrk`` or ``builtin`` for ``auto`` / ``wrk`` / ``builtin``. Raises BenchError."""
    if choice == "builtin" or (choice == "auto" and not wrk_available()):
        return "builtin"
    if not wrk_available():
        raise BenchError("--client wrk, but wrk is not installed (Debian package wrk)")
    return "wrk"


@dataclass(frozen=True)
class Step:
    """One measurement of one target in one round."""

    part: str
    target: Target
    rnd: int
    connections: int = 0

    def describe(self) -> str:
        """For progress lines and problem reports."""
        at = f" @{self.connections}" if self.connections else ""
        return f"{self.target.name} {self.part}{at} round {self.rnd}"


def plan(options: BenchOptions, targets: list[Target]) -> Iterator[Step]:
    """Every step in order: per measurement, rounds of A B C ..."""
    rounds = range(1, options.sizes.rounds + 1)
    for op in THROUGHPUT_OPS:
        if op not in options.only:
            continue
        for conns in options.sizes.connections:
            for rnd in rounds:
                for target in targets:
                    if target.durable or target.name == CEILING or op in WRITE_OPS:
                        yield Step(op, target, rnd, conns)
    fixed = [t for t in targets if t.durable or t.name == CEILING]  # not the unsafe series
    if "burst" in options.only:
        yield from (Step("burst", target, rnd) for rnd in rounds for target in fixed)
    if options.only & LARGE_PARTS:
        yield from (Step("large", target, rnd) for rnd in rounds for target in fixed)


def run_step(step: Step, runner: Runner, results: BenchResults, parts: frozenset[str]) -> str:
    """Run ``step``, add its record to ``results``; return a one-line outcome."""
    if step.part == "burst":
        burst = runner.burst(step.target, step.rnd)
        results.bursts.append(burst)
        return f"{burst.ok:,}/{burst.requests:,} ok in {burst.elapsed_s:.2f} s"
    if step.part == "large":
        large = runner.large(step.target, step.rnd, parts & LARGE_PARTS)
        results.large.append(large)
        if large.listing is not None and large.listing.error:
            results.problems.append(f"{step.describe()}: {large.listing.error}")
        rss = f"{large.rss_bytes / 2**20:,.0f} MiB" if large.rss_bytes else "-"
        restart = ", ".join(f"{s:.2f}" for s in large.restart_s) or large.restart_note or "-"
        return (f"loaded in {large.load_s:.1f} s, RSS {rss}, restart {restart}, "
                f"listing {_listing_outcome(large.listing)}")
    run = runner.throughput(step.target, step.part, step.connections, step.rnd)
    results.throughput.append(run)
    summary = run.summary
    return (f"{summary.requests_per_s:,.0f} req/s, p50 {summary.p50_ms:.3f} ms, "
            f"p99 {summary.p99_ms:.3f} ms, {summary.errors} errors, "
            f"client CPU {run.client_cpu:.2f}")


def _listing_outcome(listing: ListingRun | None) -> str:
    """The listing of one large run, for its progress line."""
    if listing is None:
        return "-"
    cell = fold_listing([listing])
    if cell.first_ms is None:
        return cell.note
    pages = "" if cell.median_ms is None else (
        f", {cell.pages} pages median {cell.median_ms:.2f} ms, max {cell.max_ms or 0:.2f} ms")
    return f"first {cell.first_ms:,.1f} ms{pages}" + (f" ({cell.note})" if cell.note else "")


def run_bench(options: BenchOptions, say: Callable[[str], None]) -> tuple[BenchResults, Path]:
    """Run every step and write the outputs; returns the results and the output dir."""
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = options.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    work, logs = out / "work", out / "logs"
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()  # the burst and 256-connection runs hold many sockets
    client = choose_client(options.client)
    targets = build_targets(options)
    # A first-run install must not eat a start's 15 s budget; the ceiling uses our .venv.
    for directory in {REPO if t.name == CEILING else t.directory for t in targets}:
        bootstrap_target(directory)
    say(f"bench: measuring fdatasync in {work.resolve()}")
    facts = machine_facts(work.resolve(), client, options.sizes.fdatasync_samples)
    results = BenchResults(started, options.mode, facts, options.sizes, targets)
    runner = Runner(RunContext(work.resolve(), logs.resolve(), client, options.sizes,
                               options.keep_data))
    steps = list(plan(options, targets))
    for index, step in enumerate(steps, 1):
        try:
            outcome = run_step(step, runner, results, options.only)
        except (HarnessError, OSError) as exc:
            results.problems.append(f"{step.describe()}: {exc}".splitlines()[0])
            outcome = f"FAILED: {exc}".splitlines()[0]
        say(f"bench: [{index}/{len(steps)}] {step.describe()}: {outcome}")
    write_outputs(results, out)
    if not options.keep_data:
        shutil.rmtree(work, ignore_errors=True)
    return results, out


def write_outputs(results: BenchResults, out: Path) -> None:
    """results.json, latency.png and results.md (which links the plot)."""
    write_json(results, out / "results.json")
    plot = "latency.png" if write_plot(results, out / "latency.png") else None
    (out / "results.md").write_text(render_markdown(results, plot))


# -- command line ------------------------------------------------------------------------


def _csv(allowed: tuple[str, ...]) -> Callable[[str], frozenset[str]]:
    def parse(text: str) -> frozenset[str]:
        chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
        unknown = chosen - set(allowed)
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return chosen

    return parse


def _connections(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,16,256, got {text}") from None
    if not counts or min(counts) <= 0:
        raise argparse.ArgumentTypeError("connection counts must be positive")
    return counts


def add_bench_parser(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bench`` with ``python -m harness``."""
    bench = verbs.add_parser("bench", help="benchmark walkv against the ceiling (and a baseline)",
                             description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--protocol", choices=("http", "resp"), default="http",
                       help="http (default): walkv vs the ceiling; resp: walkv's --resp-port "
                       "vs redis-server --appendfsync always, with redis-benchmark")
    bench.add_argument("--target", type=Path, default=REPO,
                       help="directory with the run.sh to measure (default: this checkout)")
    bench.add_argument("--baseline", type=Path, default=None,
                       help="a second target, run alternately with the first; A/B ratios")
    bench.add_argument("--no-ceiling", action="store_true", help="skip the ceiling fixture")
    bench.add_argument("--also-unsafe", action="store_true",
                       help="add the target with --unsafe-no-fsync to the PUT and mix runs")
    bench.add_argument("--short", action="store_true",
                       help="CI mode: 1 s runs, 20,000 large keys, burst of 1,000, 1 round")
    bench.add_argument("--only", type=_csv(PARTS), default=frozenset(PARTS),
                       help="comma list of: " + ", ".join(PARTS))
    bench.add_argument("--connections", type=_connections, default=None,
                       help="connection counts (default 1,16,256)")
    bench.add_argument("--duration", type=float, default=None, help="seconds per run")
    bench.add_argument("--rounds", type=int, default=None, help="rounds (default 2; short 1)")
    bench.add_argument("--large-keys", type=int, default=None,
                       help="keys for memory/list/restart/checkpoint (default 1,000,000)")
    bench.add_argument("--client", choices=("auto", "wrk", "builtin"), default="auto",
                       help="load generator (auto: wrk when installed)")
    bench.add_argument("--out", type=Path, default=None,
                       help="output directory (default ./bench-results/<timestamp>)")
    bench.add_argument("--keep-data", action="store_true", help="keep the servers' data")
    bench.set_defaults(handler=bench_command)


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """BenchOptions from the parsed command line."""
    sizes = SHORT if args.short else FULL
    overrides = {
        "connections": args.connections, "duration_s": args.duration, "rounds": args.rounds,
        "large_keys": args.large_keys,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    return BenchOptions(
        target=args.target, baseline=args.baseline, ceiling=not args.no_ceiling,
        also_unsafe=args.also_unsafe, mode="short" if args.short else "full", sizes=sizes,
        only=args.only, client=args.client, out=args.out, keep_data=args.keep_data,
    )


def http_only_flags(args: argparse.Namespace) -> list[str]:
    """The flags given that only the HTTP bench understands."""
    given = {"--also-unsafe": args.also_unsafe, "--no-ceiling": args.no_ceiling,
             "--large-keys": args.large_keys is not None, "--client": args.client != "auto",
             "--only": args.only != frozenset(PARTS)}
    return [flag for flag, present in given.items() if present]


def bench_command(args: argparse.Namespace) -> int:
    """Handler of ``python -m harness bench``."""
    if args.protocol == "resp":
        unsupported = http_only_flags(args)
        if unsupported:
            raise BenchError(f"{', '.join(unsupported)}: not for --protocol resp "
                             "(redis-benchmark measures SET and GET)")
        return resp_bench_command(args)
    options = options_from_args(args)
    results, out = run_bench(options, lambda line: print(line, file=sys.stderr, flush=True))
    print((out / "results.md").read_text())
    print(f"bench: results in {out}/ (results.md, results.json, latency.png)", file=sys.stderr)
    return 1 if results.problems else 0
