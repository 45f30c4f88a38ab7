"""Instructions per request on the event loop: walkv's connection code vs the ceiling's.

    .venv/bin/python tools/request_cost.py            # needs valgrind; about a minute

Wall-clock numbers on a shared 2-core VM move by 10-20% from run to run, too much to
see a 5% change to the request path. Instruction counts do not move: this script
feeds the same requests (``GET`` of a 100-byte value, ``PUT`` of a new key with a
100-byte value, keep-alive) through the real request path in-process, with a
transport that only counts what is written and an engine hand-over that completes
each group of 8 writes at once, and runs each case under ``valgrind
--tool=callgrind``. A run with the same setup but no requests is subtracted, so the
number is the cost of one request: parsing, routing, the command, answering (and
for PUT the answer slot, the batch and the group completion). Sockets, the kernel,
uvloop and the committer thread are not in it; the bench measures those.

``--inprocess MODE N FEED`` is the measured body (valgrind runs the script with it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from harness.bench.ceiling.server import KVProtocol  # noqa: E402 - ROOT on sys.path first
from server import native  # noqa: E402
from server.config import parse_args  # noqa: E402
from storage import Engine, Keyspace, Outcome  # noqa: E402
from storage.testing import MemFileSystem  # noqa: E402

MODES = ("get-walkv", "get-ceiling", "put-walkv", "put-ceiling")
GROUP = 8
"""Writes per simulated commit group."""


class CountingTransport:
    """Counts writes; never pushes back."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, parts: list[bytes]) -> None:
        self.writes += len(parts)  # one part per answer (values here are small)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def requests(op: str, n: int) -> list[bytes]:
    """``n`` requests as a keep-alive client (wrk) sends them."""
    if op == "get":
        return [b"GET /kv/key-%d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n" % (i % 1000)
                for i in range(n)]
    return [b"PUT /kv/new-%d HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 100\r\n\r\n"
            % i + b"v" * 100 for i in range(n)]


_request_path: str | None = None


def request_path() -> str:
    """Choose the build of the request path, as ``python -m server`` does, once."""
    global _request_path
    if _request_path is None:
        config = parse_args([], os.environ)
        _request_path = native.select(config.native, config.native_build)
    return _request_path


def walkv_feeder(transport: CountingTransport) -> Callable[[bytes], None]:
    """``data_received`` of a real HttpConnection, the batch completed every GROUP writes."""
    request_path()
    # The request path's modules load only now, from the build chosen above.
    from server.http.protocol import HttpConnection  # noqa: PLC0415
    from server.http.service import HttpService  # noqa: PLC0415
    from server.introspection import Introspection  # noqa: PLC0415
    from server.pipeline import WriteBatch, complete_group  # noqa: PLC0415
    from server.state import ServerState  # noqa: PLC0415

    class Loop:
        def call_later(self, *args: Any) -> None:
            return None

        def call_soon(self, *args: Any) -> None:
            return None  # the batch is completed by `feed` instead

    loop: Any = Loop()
    table = Keyspace({b"key-%d" % i: b"v" * 100 for i in range(1000)})
    config = parse_args(["--port=1"])
    state = ServerState(config, table, loop, 1 << 20)
    engine = Engine.open("/db", fs=MemFileSystem())  # only for introspection's readings
    batch = WriteBatch(loop, engine.submit_batch)
    conn = HttpConnection(HttpService(state, batch, Introspection(state, engine)))
    conn.connection_made(transport)  # type: ignore[arg-type]
    pending = batch.pending

    def feed(data: bytes) -> None:
        conn.data_received(data)
        if len(pending) >= GROUP:
            slots = [write[3] for write in pending]
            pending.clear()
            complete_group(slots, Outcome.OK)

    return feed


def ceiling_feeder(transport: CountingTransport) -> Callable[[bytes], None]:
    """``data_received`` of the ceiling fixture's protocol."""
    protocol = KVProtocol({b"key-%d" % i: b"v" * 100 for i in range(1000)}, 64 << 20)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    feed: Callable[[bytes], None] = protocol.data_received
    return feed


def run_inprocess(mode: str, n: int, serve: bool = True) -> int:
    """Build ``n`` requests of ``mode`` and serve them (unless not ``serve``: the
    baseline); returns the number of answers written."""
    op, target = mode.split("-")
    data = requests(op, n)
    transport = CountingTransport()
    feed = (walkv_feeder if target == "walkv" else ceiling_feeder)(transport)
    if serve:
        for chunk in data:
            feed(chunk)
    return transport.writes


def _instructions(mode: str, n: int, serve: bool) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--inprocess", mode, str(n), str(int(serve))],
        cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"request_cost: no instruction count from valgrind:\n{out.stderr}")
    return int(found.group(1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/request_cost.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--inprocess", nargs=3, metavar=("MODE", "N", "FEED"))
    args = parser.parse_args(argv)
    if args.inprocess:
        mode, n, serve = args.inprocess
        run_inprocess(mode, int(n), serve == "1")
        return 0
    if shutil.which("valgrind") is None:
        print("request_cost: valgrind is not installed (Debian package valgrind)",
              file=sys.stderr)
        return 2
    print("| request | walkv | ceiling |\n|---|---|---|")
    for op in ("get", "put"):
        cost = {}
        for target in ("walkv", "ceiling"):
            mode = f"{op}-{target}"
            total = (_instructions(mode, args.requests, True)
                     - _instructions(mode, args.requests, False))
            cost[target] = total // args.requests
        print(f"| {op.upper()} | {cost['walkv']:,} | {cost['ceiling']:,} |", flush=True)
    print("instructions per request (callgrind), event-loop side only")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
