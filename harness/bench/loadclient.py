"""The benchmark's built-in load client, for machines without ``wrk``.

``harness.load`` goes through the general async client (``harness.client``: futures,
httptools callbacks, header dicts), which costs more CPU per request than the servers
being measured spend; at 256 connections it, not the server, would set the number.
This client keeps only what a closed loop needs, so it stays off the critical path on
a 2-core machine:

- one ``asyncio.Protocol`` per keep-alive connection, one request in flight on it;
- requests are built with one ``%`` format from a template ``encode_request`` made;
- a reply is framed by ``harness.client.frame_reply``: the status code and
  ``Content-Length`` (every walkv-API reply has one), the body skipped.

It runs as its own process (``python -m harness.bench.loadclient``), like wrk, so the
benchmark can measure its CPU time and it never shares an event loop with the
orchestrator. It prints one JSON object: ``harness.load.LoadSummary`` fields.

Modes: ``put`` (a new key per request), ``get`` and ``mix`` (50/50 GET / overwriting
PUT) over the preloaded keys ``harness.load.key_name(0 .. keys-1)``, ``preload``
(write those keys once, pipelined, as fast as the server takes them; not measured) and
``burst`` (``keys`` PUTs started at once, each on its own new connection, through
``harness.burst``; prints a ``BurstResult`` instead).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import cast

from harness.burst import burst_items, burst_put, raise_nofile_limit
from harness.client import encode_request, frame_reply
from harness.eventloop import run_async
from harness.load import KEY_TEMPLATE, LoadResult

OPS = ("put", "get", "mix", "preload", "burst")
PRELOAD_DEPTH = 64
"""Requests pipelined per preload batch: groups commits without a huge backlog."""


@dataclass(frozen=True)
class ClientJob:
    """What every connection of one run does."""

    host: str
    port: int
    op: str
    connections: int
    duration_s: float
    keys: int
    value_bytes: int = 100


class RequestMaker:
    """Builds request bytes for one connection; ``next()`` says what to send next."""

    def __init__(self, job: ClientJob, index: int) -> None:
        host = f"{job.host}:{job.port}"
        value = b"v" * job.value_bytes
        # Templates with one %d left for the key number; the value holds no "%".
        self._get = encode_request("GET", "/kv/" + KEY_TEMPLATE, host=host)
        self._put_unique = encode_request("PUT", f"/kv/u-{index}-%d", value, host=host)
        self._put_key = encode_request("PUT", "/kv/" + KEY_TEMPLATE, value, host=host)
        self._keys = job.keys
        self._random = random.Random(index).random
        self._counter = 0
        closed_loop = {"put": self._next_put, "get": self._next_get, "mix": self._next_mix}
        # A preload maker only uses put_key(); its next() is never called.
        self.next: Callable[[], bytes] = closed_loop.get(job.op, self._next_put)

    def _next_put(self) -> bytes:
        self._counter += 1
        return self._put_unique % self._counter

    def _next_get(self) -> bytes:
        return self._get % int(self._random() * self._keys)

    def _next_mix(self) -> bytes:
        key = int(self._random() * self._keys)
        return self._put_key % key if self._random() < 0.5 else self._get % key

    def put_key(self, index: int) -> bytes:
        """A PUT of the preloaded key ``index`` (for preloading)."""
        return self._put_key % index


class ClosedLoop(asyncio.Protocol):
    """One connection sending its next request as soon as the previous reply arrives."""

    def __init__(self, maker: RequestMaker, result: LoadResult) -> None:
        self._maker = maker
        self._deadline = 0
        self._result = result
        self._buf = bytearray()
        self._sent_at = 0
        self._transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def begin(self, deadline_ns: int) -> None:
        """Send the first request; stop sending at ``deadline_ns`` (perf_counter_ns)."""
        self._deadline = deadline_ns
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        if time.perf_counter_ns() >= self._deadline:
            self._transport.close()
            return
        request = self._maker.next()
        self._sent_at = time.perf_counter_ns()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        framed = frame_reply(self._buf)
        if framed is None:
            return
        status, size = framed
        _tally(self._result, status, time.perf_counter_ns() - self._sent_at)
        del self._buf[:size]
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter_ns() < self._deadline:
            self._result.errors["connection closed"] += 1
        if not self.finished.done():
            self.finished.set_result(None)


async def run_closed_loop(job: ClientJob) -> LoadResult:
    """Open every connection, then run them all until the deadline."""
    loop = asyncio.get_running_loop()
    result = LoadResult(elapsed_s=0.0, latencies_ns=array("q"), errors=Counter())
    protocols: list[ClosedLoop] = []
    for index in range(job.connections):
        factory = functools.partial(ClosedLoop, RequestMaker(job, index), result)
        _, protocol = await loop.create_connection(factory, job.host, job.port)
        protocols.append(protocol)
    started = time.perf_counter_ns()
    deadline = started + int(job.duration_s * 1e9)
    for protocol in protocols:
        protocol.begin(deadline)
    await asyncio.gather(*(protocol.finished for protocol in protocols))
    result.elapsed_s = (time.perf_counter_ns() - started) / 1e9
    return result


async def preload(job: ClientJob) -> LoadResult:
    """PUT keys ``0 .. keys-1`` once, ``PRELOAD_DEPTH`` pipelined per connection."""
    result = LoadResult(elapsed_s=0.0, latencies_ns=array("q"), errors=Counter())
    started = time.perf_counter()
    await asyncio.gather(*(_preload_share(job, index, result) for index in range(job.connections)))
    result.elapsed_s = time.perf_counter() - started
    return result


async def _preload_share(job: ClientJob, index: int, result: LoadResult) -> None:
    """This connection's keys: ``index``, ``index + connections``, ... in batches."""
    reader, writer = await asyncio.open_connection(job.host, job.port)
    maker = RequestMaker(job, index)
    mine = range(index, job.keys, job.connections)
    buf = bytearray()
    try:
        for start in range(0, len(mine), PRELOAD_DEPTH):
            batch = mine[start : start + PRELOAD_DEPTH]
            writer.write(b"".join(maker.put_key(key) for key in batch))
            await _read_replies(reader, buf, len(batch), result)
    finally:
        writer.close()


async def _read_replies(reader: asyncio.StreamReader, buf: bytearray, count: int,
                        result: LoadResult) -> None:
    """Read ``count`` replies (unmeasured: latency 0), keeping extra bytes in ``buf``."""
    while count:
        framed = frame_reply(buf)
        if framed is None:
            chunk = await reader.read(65536)
            if not chunk:
                raise ConnectionError("server closed the connection during preload")
            buf += chunk
            continue
        status, size = framed
        del buf[:size]
        count -= 1
        _tally(result, status, 0)


def _tally(result: LoadResult, status: int, elapsed_ns: int) -> None:
    """Count one reply: a 200's latency, or an error named by its status."""
    if status == 200:
        result.latencies_ns.append(elapsed_ns)
    else:
        result.errors[f"status {status}"] += 1


def run(job: ClientJob) -> LoadResult:
    """Run a closed-loop or preload ``job`` on uvloop (when installed)."""
    return run_async(preload(job) if job.op == "preload" else run_closed_loop(job))


def run_burst(job: ClientJob) -> dict[str, object]:
    """``job.keys`` PUTs at once, each on a new connection; counts and failure kinds."""
    items = burst_items(job.keys, prefix="bench-burst", value_bytes=job.value_bytes)
    return run_async(burst_put(job.host, job.port, items)).to_dict()


def main(argv: list[str] | None = None) -> int:
    """Run one job and print its result as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m harness.bench.loadclient", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--op", choices=OPS, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--keys", type=int, default=100_000,
                        help="preloaded key space (burst: number of requests)")
    parser.add_argument("--value-bytes", type=int, default=100)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    # Nothing here makes reference cycles; a collection would only add latency spikes.
    gc.disable()
    job = ClientJob(args.host, args.port, args.op, args.connections, args.duration, args.keys,
                    args.value_bytes)
    try:
        result = run_burst(job) if job.op == "burst" else asdict(run(job).summary())
    except OSError as exc:
        print(f"loadclient: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
