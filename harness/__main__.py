"""Command line: ``python -m harness VERB ...`` against a running server.

Verbs:
  load   N keep-alive connections issuing requests back to back for S seconds
  burst  many PUTs at once, each on its own new connection

Each verb is one ``add_parser`` call plus one handler; later verbs (crash, bench,
powerloss) plug in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from harness.burst import burst_items, burst_put, raise_nofile_limit
from harness.load import LoadConfig, LoadOp, run_load

_new_uvloop: Callable[[], asyncio.AbstractEventLoop] | None
try:
    import uvloop

    _new_uvloop = uvloop.new_event_loop
except ImportError:  # the default loop works too, only slower
    _new_uvloop = None

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed, else on the default loop."""
    with asyncio.Runner(loop_factory=_new_uvloop) as runner:
        return runner.run(main)


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
        print(
            json.dumps(
                {
                    "requests": result.requests,
                    "ok": result.ok,
                    "elapsed_s": result.elapsed_s,
                    "failures": dict(result.failures),
                },
                sort_keys=True,
            )
        )
    else:
        print(result.summary())
    return 0 if result.ok == result.requests else 1


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen verb; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (OSError, TimeoutError) as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
