"""Command line: ``python -m harness VERB ...``.

Verbs:
  load       N keep-alive connections issuing requests back to back for S seconds
  burst      many PUTs at once, each on its own new connection
  crash      SIGKILL torture of a server started from run.sh, with file damage (HTTP or
             the Redis protocol)
  powerloss  power cuts at every fsync boundary of the engine, in-process
  bench      start targets and measure throughput, latency, memory, restart, checkpoints
             (or, with --protocol resp, walkv against Redis with redis-benchmark)

Each verb is one ``add_parser`` call plus one handler; ``bench`` has many options and
registers itself (``harness.bench.cli.add_bench_parser``).
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.bench.cli import add_bench_parser
from harness.burst import burst_items, burst_put, raise_nofile_limit
from harness.crash.damage import DamageKind
from harness.crash.resp import RespCrashLoop
from harness.crash.torture import (
    WALKV_SERVER_ARGS,
    CrashConfig,
    CrashLoop,
    CrashStats,
    Mode,
    run_crash,
)
from harness.errors import HarnessError
from harness.eventloop import run_async
from harness.load import LoadConfig, LoadOp, run_load
from harness.powerloss import VARIANTS, PowerLossConfig, StateId, run_powerloss
from harness.proc import REPO
from harness.report import Progress, Report


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="server address (127.0.0.1)")
    parser.add_argument("--port", type=_positive_int, required=True, help="server port")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _load(args: argparse.Namespace) -> int:
    config = LoadConfig(
        host=args.host,
        port=args.port,
        connections=args.connections,
        duration_s=args.duration,
        op=LoadOp(args.op),
        value_bytes=args.value_bytes,
        keys=args.keys,
        seed=args.seed,
    )
    summary = run_async(run_load(config)).summary()
    print(summary.to_json() if args.json else summary.to_text())
    return 0 if summary.errors == 0 else 1


def _burst(args: argparse.Namespace) -> int:
    raise_nofile_limit()
    items = burst_items(args.requests, prefix=args.prefix, value_bytes=args.value_bytes)
    result = run_async(burst_put(args.host, args.port, items, timeout=args.timeout))
    if args.json:
        print(json.dumps(result.to_dict(), sort_keys=True))
    else:
        print(result.summary())
    return 0 if result.ok == result.requests else 1


def _damage_kinds(text: str) -> tuple[DamageKind, ...]:
    if text == "all":
        return tuple(DamageKind)
    if text == "none":
        return ()
    try:
        return tuple(DamageKind(name.strip()) for name in text.split(",") if name.strip())
    except ValueError:
        names = ", ".join(k.value for k in DamageKind)
        raise argparse.ArgumentTypeError(
            f"damage kinds are all, none or some of: {names}") from None


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX seconds, got {text}") from None
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < MIN <= MAX, got {text}")
    return pair


def _finish(report: Report, args: argparse.Namespace) -> int:
    report.render()
    if args.report is not None:
        report.write_json(args.report)
    return 0 if report.ok else 1


def _crash(args: argparse.Namespace) -> int:
    target = args.target.resolve()
    server_args: tuple[str, ...]
    if args.server_args is None:
        server_args = WALKV_SERVER_ARGS if target == REPO else ()
    else:
        server_args = tuple(shlex.split(args.server_args))
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    config = CrashConfig(
        target=target, cycles=args.cycles, seed=seed, duration_s=args.duration,
        clients=args.clients, keys=args.keys, mode=Mode(args.mode), damage=args.damage,
        damage_every=args.damage_every, kill_after=args.kill_after, server_args=server_args,
    )
    raise_nofile_limit()
    with Progress(args.cycles, f"crash (seed {seed})", enabled=not args.no_progress) as bar:

        def on_cycle(_cycle: int, stats: CrashStats) -> None:
            bar.advance(status=f"{stats.acked_ops:,} acked, "
                        f"{sum(stats.violations.values())} violations")

        loop_class = CRASH_LOOPS[args.protocol]
        report = run_async(run_crash(config, args.work_dir, on_cycle, keep=args.keep,
                                     loop_class=loop_class))
    return _finish(report, args)


CRASH_LOOPS: dict[str, type[CrashLoop]] = {"http": CrashLoop, "resp": RespCrashLoop}
"""``crash --protocol``: which protocol the clients speak to the target."""


def _powerloss(args: argparse.Namespace) -> int:
    reproduce = (args.round, args.point, args.variant)
    if any(part is not None for part in reproduce) and None in reproduce:
        print("harness: error: --round, --point and --variant go together", file=sys.stderr)
        return 2
    only = StateId(args.round, args.point, args.variant) if args.round is not None else None
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    config = PowerLossConfig(states=args.states, seed=seed, duration_s=args.duration,
                             keys=args.keys, only=only)
    total = 1 if only is not None else args.states
    with Progress(total, f"powerloss (seed {seed})", enabled=not args.no_progress) as bar:
        report = run_powerloss(config, on_state=bar.advance)
    return _finish(report, args)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None,
                        help="fixes every random choice (default: a new one, reported)")
    parser.add_argument("--duration", type=_positive_float, default=None,
                        help="stop after this many seconds (whatever the count reached)")
    parser.add_argument("--report", type=Path, default=None, help="write a JSON report here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m harness`` argument parser."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m harness", description=summary)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    load = verbs.add_parser("load", help="closed-loop load on keep-alive connections")
    _add_target(load)
    load.add_argument("--connections", type=_positive_int, default=16)
    load.add_argument("--duration", type=_positive_float, default=10.0, help="seconds")
    load.add_argument("--op", choices=[op.value for op in LoadOp], default="put")
    load.add_argument("--value-bytes", type=_positive_int, default=100)
    load.add_argument("--keys", type=_positive_int, default=1000, help="key-space size")
    load.add_argument("--seed", type=int, default=0)
    load.set_defaults(handler=_load)

    burst = verbs.add_parser("burst", help="PUTs started at once, one new connection each")
    _add_target(burst)
    burst.add_argument("--requests", type=_positive_int, default=10_000)
    burst.add_argument("--value-bytes", type=_positive_int, default=16)
    burst.add_argument("--prefix", default="burst", help="key prefix")
    burst.add_argument("--timeout", type=_positive_float, default=15.0, help="per request, s")
    burst.set_defaults(handler=_burst)

    crash = verbs.add_parser("crash", help="SIGKILL torture with file damage and an oracle")
    crash.add_argument("--target", type=Path, default=REPO,
                       help="directory with the run.sh to test (default: this checkout)")
    crash.add_argument("--cycles", type=_positive_int, default=200, help="kill/restart cycles")
    crash.add_argument("--protocol", choices=list(CRASH_LOOPS), default="http",
                       help="what the clients speak: http (default) or resp (the server "
                       "is started with --resp-port; SET, DEL, INCRBY, EXPIRE, MSET, "
                       "MULTI/EXEC)")
    crash.add_argument("--clients", type=_positive_int, default=32,
                       help="keep-alive connections in concurrent cycles")
    crash.add_argument("--keys", type=_positive_int, default=1000, help="key-space size")
    crash.add_argument("--mode", choices=[m.value for m in Mode], default="mixed",
                       help="concurrent, serial (one op at a time) or mixed (default)")
    crash.add_argument("--damage", type=_damage_kinds, default=tuple(DamageKind),
                       metavar="KINDS", help="all (default), none, or a comma list of: "
                       + ", ".join(k.value for k in DamageKind))
    crash.add_argument("--damage-every", type=int, default=3,
                       help="damage the files after every Nth kill (0: never)")
    crash.add_argument("--kill-after", type=_range, default=(0.05, 1.0), metavar="MIN,MAX",
                       help="seconds of writing before each kill (uniform)")
    crash.add_argument("--server-args", default=None,
                       help="extra server flags (default for this checkout: "
                       + " ".join(WALKV_SERVER_ARGS) + ")")
    crash.add_argument("--work-dir", type=Path, default=None,
                       help="where data and logs go (default: a new temporary directory)")
    crash.add_argument("--keep", action="store_true", help="keep the working directory")
    _add_run_options(crash)
    crash.set_defaults(handler=_crash)

    power = verbs.add_parser("powerloss", help="power cuts at every fsync of the engine")
    power.add_argument("--states", type=_positive_int, default=10_000,
                       help="crash states to check (whole rounds: a few more may run)")
    power.add_argument("--keys", type=_positive_int, default=PowerLossConfig.keys,
                       help="key-space size of the workload")
    power.add_argument("--round", type=int, default=None, help="reproduce: workload round")
    power.add_argument("--point", type=int, default=None, help="reproduce: crash point")
    power.add_argument("--variant", choices=VARIANTS, default=None,
                       help="reproduce: which crash state at that point")
    _add_run_options(power)
    power.set_defaults(handler=_powerloss)

    add_bench_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (OSError, TimeoutError, HarnessError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
