"""``python -m harness bench --protocol resp``: walkv against Redis, both fsync'ing every write.

Targets, each started as CONTRACT.md's harness starts a server (``harness.proc.
ServerProcess``: ``run.sh --port=P --working-dir=D`` in its own process group,
SIGKILLed by that group's PID afterwards, never by name):

- walkv: this checkout (A, or ``--target DIR``) and ``--baseline DIR`` (B), started
  with ``--resp-port`` on a second free port, which is where the load goes;
- ``redis``: ``harness/bench/redis/run.sh``, a real ``redis-server`` with
  ``--appendonly yes --appendfsync always --save ""`` and its ``--dir`` a fresh
  directory under ``OUT/work``, on the disk walkv's data is on.

Each measurement is one ``redis-benchmark -t set,get -d 100 -r 100000 -n N -c C
[-P 16] --csv`` against a fresh server: SET of random keys of a 100,000-key range, then
GET of random keys of the same range (those the SETs wrote, and misses). The settings
are 1, 16 and 256 connections, and 16 connections pipelining 16 requests each.
``-n`` is sized so that the SET test lasts about ``--duration`` on a machine like the
development VM (``RATE_GUESS``); every target gets the same ``-n``. Rounds alternate:
per setting, round after round, A (B) and Redis run back to back, so the ratios
(``harness.bench.resp_report``) compare runs made side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.bench.loadgen import GRACE_S, ClientProcess
from harness.bench.machine import machine_facts
from harness.bench.model import RespResults, RespRun, RespSizes, Setting, Target
from harness.bench.probe import process_cpu_s
from harness.bench.resp_report import REDIS, write_resp_outputs
from harness.burst import raise_nofile_limit
from harness.errors import BenchError, HarnessError
from harness.proc import REPO, ServerProcess, bootstrap_target, free_port

REDIS_DIR = Path(__file__).resolve().parent / "redis"
"""The Redis target: its ``run.sh`` execs ``redis-server`` with fsync at every write."""
TESTS = ("SET", "GET")
VALUE_BYTES = 100
KEY_RANGE = 100_000


RATE_GUESS = {Setting(1): 3_000, Setting(16): 12_000, Setting(256): 25_000,
              Setting(16, 16): 50_000}
"""SET requests/s a durable server reaches on the 2-core development VM: sizes ``-n``."""
DEFAULT_RATE = 12_000


def requests_for(sizes: RespSizes, setting: Setting) -> int:
    """``-n``: about ``duration_s`` of SETs, at least two requests per connection."""
    rate = RATE_GUESS.get(setting, DEFAULT_RATE)
    return max(2 * setting.connections * setting.pipeline, round(sizes.duration_s * rate))


FULL = RespSizes(duration_s=5.0, connections=(1, 16, 256), rounds=2, fdatasync_samples=2000)
SHORT = RespSizes(duration_s=0.1, connections=(1, 16, 256), rounds=1, fdatasync_samples=200)
"""For CI: a few hundred to a few thousand requests per run, one round."""


# -- one measurement -----------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    """One line of ``redis-benchmark --csv``."""

    test: str
    requests_per_s: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


_CSV_COLUMNS = {"rps": "requests_per_s", "avg_latency_ms": "avg_ms",
                "p50_latency_ms": "p50_ms", "p95_latency_ms": "p95_ms",
                "p99_latency_ms": "p99_ms", "max_latency_ms": "max_ms"}


def parse_csv(text: str) -> dict[str, CsvRow]:
    """redis-benchmark 7's ``--csv`` output, by test name. Raises ValueError."""
    lines = [line for line in text.splitlines() if line.startswith('"')]
    rows: dict[str, CsvRow] = {}
    for record in csv.DictReader(io.StringIO("\n".join(lines))):
        missing = set(_CSV_COLUMNS) - set(record)
        if missing:
            raise ValueError(f"no column {', '.join(sorted(missing))} in redis-benchmark --csv")
        fields = {name: float(record[column]) for column, name in _CSV_COLUMNS.items()}
        rows[record["test"]] = CsvRow(record["test"], **fields)
    return rows


def benchmark_argv(port: int, setting: Setting, requests: int) -> list[str]:
    """The redis-benchmark command line of one measurement."""
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "set,get",
            "-d", str(VALUE_BYTES), "-r", str(KEY_RANGE), "-n", str(requests),
            "-c", str(setting.connections)]
    if setting.pipeline > 1:
        argv += ["-P", str(setting.pipeline)]
    return [*argv, "--csv"]


class RespRunner:
    """Runs one redis-benchmark measurement on a fresh server of a target."""

    def __init__(self, work_dir: Path, log_dir: Path, sizes: RespSizes,
                 keep_data: bool = False) -> None:
        self.work_dir = work_dir
        self.log_dir = log_dir
        self.sizes = sizes
        self.keep_data = keep_data

    def measure(self, target: Target, setting: Setting, rnd: int) -> list[RespRun]:
        """One SET and one GET record."""
        label = f"{target.name}-resp-c{setting.connections}-p{setting.pipeline}-r{rnd}"
        requests = requests_for(self.sizes, setting)
        log = self.log_dir / f"{label}.redis-benchmark.log"
        with self._server(target, label) as (server, port):
            cpu_before = process_cpu_s(server)
            limit = GRACE_S + 20 * self.sizes.duration_s
            done = ClientProcess(benchmark_argv(port, setting, requests), log, limit).wait()
            server_cpu = (process_cpu_s(server) - cpu_before) / max(done.wall_s, 1e-9)
        if done.returncode != 0:
            raise BenchError(f"redis-benchmark exited with status {done.returncode}", log)
        try:
            rows = parse_csv(done.stdout)
        except ValueError as exc:
            raise BenchError(f"redis-benchmark printed no usable CSV ({exc})", log) from None
        if set(rows) != set(TESTS):
            raise BenchError(f"redis-benchmark reported tests {sorted(rows)}", log)
        return [RespRun(target.name, rnd, test, setting.connections, setting.pipeline, requests,
                        row.requests_per_s, row.avg_ms, row.p50_ms, row.p95_ms, row.p99_ms,
                        row.max_ms, done.cores, server_cpu)
                for test, row in rows.items()]

    @contextlib.contextmanager
    def _server(self, target: Target, label: str) -> Iterator[tuple[ServerProcess, int]]:
        """A started server on a new directory and the port speaking RESP; SIGKILLed
        (its process group, by PID) and its data removed after."""
        data = self.work_dir / label
        resp_port = None if target.name == REDIS else free_port()
        try:
            with ServerProcess(target.directory, data, log_dir=self.log_dir,
                               resp_port=resp_port, extra_args=target.extra_args,
                               name=label) as server:
                server.start()
                yield server, server.port if resp_port is None else server.resp_address[1]
        finally:
            if not self.keep_data:
                shutil.rmtree(data, ignore_errors=True)


# -- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RespBenchOptions:
    """One ``bench --protocol resp`` run, as the command line asked for it."""

    target: Path = REPO
    baseline: Path | None = None
    mode: str = "full"
    sizes: RespSizes = FULL
    out: Path | None = None
    keep_data: bool = False


def build_resp_targets(options: RespBenchOptions) -> list[Target]:
    """A, the baseline if asked for, then Redis."""
    main_dir = options.target.resolve()
    targets = [Target("walkv" if main_dir == REPO else main_dir.name, main_dir)]
    if options.baseline is not None:
        targets.append(Target("baseline", options.baseline.resolve()))
    return [*targets, Target(REDIS, REDIS_DIR)]


def plan(sizes: RespSizes, targets: list[Target]) -> Iterator[tuple[Setting, int, Target]]:
    """Per setting, rounds of A (B) Redis."""
    for setting in sizes.settings():
        for rnd in range(1, sizes.rounds + 1):
            for target in targets:
                yield setting, rnd, target


def tool_version(name: str) -> str:
    """``name --version``'s first line. Raises BenchError when ``name`` is not on PATH."""
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} is not installed (Debian packages redis-server, redis-tools)")
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                          check=False)
    lines = (done.stdout or done.stderr).splitlines()
    # redis-server's line goes on with its build (sha=, malloc=, bits=, build=).
    return lines[0].split(" sha=")[0].strip() if lines else path


def run_resp_bench(options: RespBenchOptions,
                   say: Callable[[str], None]) -> tuple[RespResults, Path]:
    """Run every measurement and write the outputs; returns the results and the output dir."""
    redis_version, benchmark_version = tool_version("redis-server"), tool_version(
        "redis-benchmark")
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    out = options.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    work, logs = (out / "work").resolve(), (out / "logs").resolve()
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    raise_nofile_limit()
    targets = build_resp_targets(options)
    for target in targets[:-1]:
        bootstrap_target(target.directory)
    say(f"bench: measuring fdatasync in {work}")
    facts = machine_facts(work, "redis-benchmark", options.sizes.fdatasync_samples)
    results = RespResults(started, options.mode, facts, redis_version, benchmark_version,
                          options.sizes, targets)
    runner = RespRunner(work, logs, options.sizes, options.keep_data)
    steps = list(plan(options.sizes, targets))
    for index, (setting, rnd, target) in enumerate(steps, 1):
        where = f"{target.name} @{setting.label()} round {rnd}"
        try:
            runs = runner.measure(target, setting, rnd)
        except (HarnessError, OSError) as exc:
            results.problems.append(f"{where}: {exc}".splitlines()[0])
            say(f"bench: [{index}/{len(steps)}] {where}: FAILED: {exc}".splitlines()[0])
            continue
        results.runs.extend(runs)
        say(f"bench: [{index}/{len(steps)}] {where}: " + ", ".join(
            f"{r.test} {r.requests_per_s:,.0f}/s p50 {r.p50_ms:.3f} ms" for r in runs)
            + f", client CPU {runs[0].client_cpu:.2f}")
    write_resp_outputs(results, out)
    if not options.keep_data:
        shutil.rmtree(work, ignore_errors=True)
    return results, out


def resp_options_from_args(args: argparse.Namespace) -> RespBenchOptions:
    """RespBenchOptions from the parsed command line (the flags both benches share)."""
    sizes = SHORT if args.short else FULL
    sizes = RespSizes(
        duration_s=args.duration if args.duration is not None else sizes.duration_s,
        connections=args.connections or sizes.connections,
        rounds=args.rounds if args.rounds is not None else sizes.rounds,
        fdatasync_samples=sizes.fdatasync_samples,
    )
    return RespBenchOptions(target=args.target, baseline=args.baseline,
                            mode="short" if args.short else "full", sizes=sizes, out=args.out,
                            keep_data=args.keep_data)


def resp_bench_command(args: argparse.Namespace) -> int:
    """``python -m harness bench --protocol resp``: 1 if some measurement could not run."""
    options = resp_options_from_args(args)
    results, out = run_resp_bench(options, lambda line: print(line, file=sys.stderr, flush=True))
    print((out / "results.md").read_text())
    print(f"bench: results in {out}/ (results.md, results.json)", file=sys.stderr)
    return 1 if results.problems else 0
