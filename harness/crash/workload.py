"""Concurrent random writers recorded by an Oracle, and reading the state back.

``RandomWrites`` runs N clients, each on its own keep-alive connection, issuing PUT,
overwrite, DELETE and (if asked) a rare ``DELETE /clear`` on a shared small key space
back to back. With one client it is serial: one op at a time, so the order in which
ops were acknowledged is total. Every request is
recorded in the oracle when it is written to the socket and stamped when its reply
is read, so a crash at any instant leaves an exact record of what was acknowledged
and what was in flight.

Crash pattern (nothing runs on the loop between the two calls, so the oracle's view
of "in flight" is exactly the set of requests outstanding at the kill)::

    writes.stop()
    server.kill()
    await writes.join()
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.client import REQUEST_ERRORS, Connection, KVClient, kv_path
from harness.oracle import OpKind, Oracle, Value, make_value


@dataclass(frozen=True)
class ValueSizes:
    """How long the random part of each value may be: (weight, max bytes) classes."""

    classes: tuple[tuple[float, int], ...]

    def pick(self, rng: random.Random) -> int:
        """The maximum filler length for the next value (make_value draws below it)."""
        roll = rng.random() * sum(weight for weight, _ in self.classes)
        for weight, limit in self.classes:
            roll -= weight
            if roll < 0:
                return limit
        return self.classes[-1][1]


MIXED_VALUES = ValueSizes(((0.80, 64), (0.17, 4096), (0.028, 65536), (0.002, 1 << 20)))
"""Mostly small, some pages, a few large, rarely up to 1 MiB: binary throughout."""


@dataclass
class WriteStats:
    """What the writers saw: replies by status and connection failures by kind."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)

    @property
    def acked(self) -> int:
        """Requests answered 2xx."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        """Requests answered with any other status."""
        return sum(self.statuses.values()) - self.acked


class RandomWrites:
    """N concurrent clients doing random PUT/DELETE on ``keys``, recorded in ``oracle``."""

    def __init__(
        self,
        host: str,
        port: int,
        oracle: Oracle,
        keys: Sequence[bytes],
        *,
        clients: int = 32,
        delete_ratio: float = 0.25,
        clear_ratio: float = 0.0,
        max_value_filler: int = 256,
        value_sizes: ValueSizes | None = None,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.oracle = oracle
        self.keys = list(keys)
        self.clients = clients
        self.delete_ratio = delete_ratio
        self.clear_ratio = clear_ratio
        self.value_sizes = value_sizes or ValueSizes(((1.0, max_value_filler),))
        self.stats = WriteStats()
        self._seed = seed
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open every connection, then let all writers go at once."""
        conns = await asyncio.gather(
            *(Connection.open(self.host, self.port) for _ in range(self.clients))
        )
        self._tasks = [
            asyncio.create_task(self._writer(conn, random.Random(self._seed * 1000 + i)))
            for i, conn in enumerate(conns)
        ]

    def stop(self) -> None:
        """No writer sends another request after this call (replies are still read)."""
        self._stopping = True

    async def join(self, timeout: float = 30.0) -> None:
        """Wait for every writer to finish its outstanding request and exit."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(*self._tasks)

    async def _writer(self, conn: Connection, rng: random.Random) -> None:
        try:
            while not self._stopping:
                if conn.closed:
                    reconnected = await self._reconnect()
                    if reconnected is None:
                        return
                    conn = reconnected
                await self._one_op(conn, rng)
        finally:
            await conn.close()

    async def _one_op(self, conn: Connection, rng: random.Random) -> None:
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < self.clear_ratio:
            reply = conn.send("DELETE", "/clear")
            op = self.oracle.sent_clear()
        elif roll < self.clear_ratio + self.delete_ratio:
            reply = conn.send("DELETE", kv_path(key))
            op = self.oracle.sent(key, OpKind.DELETE, None)
        else:
            seq = self.oracle.next_seq()
            value = make_value(key, seq, rng, self.value_sizes.pick(rng))
            reply = conn.send("PUT", kv_path(key), value)
            op = self.oracle.sent(key, OpKind.PUT, value, seq)
        try:
            response = await reply
        except REQUEST_ERRORS as exc:  # ends the connection; the writer reconnects
            self.stats.connection_errors[type(exc).__name__] += 1
            return  # the op stays unacknowledged: it may or may not have applied
        self.oracle.answered(op, response.status)
        self.stats.statuses[response.status] += 1

    async def _reconnect(self) -> Connection | None:
        """A new connection, or None if the server stopped accepting (it is gone)."""
        if self._stopping:
            return None
        try:
            return await Connection.open(self.host, self.port, timeout=5.0)
        except REQUEST_ERRORS as exc:
            self.stats.connection_errors[f"reconnect {type(exc).__name__}"] += 1
            return None


async def fetch_state(
    host: str, port: int, keys: Sequence[bytes], *, connections: int = 8
) -> dict[bytes, Value]:
    """GET every key over a few keep-alive connections: value, or None on 404.

    Any other status raises AssertionError naming the key, since a recovered server
    must answer every read.
    """
    state: dict[bytes, Value] = {}
    queue = list(keys)

    async def reader() -> None:
        client = await KVClient.open(host, port)
        try:
            while queue:
                key = queue.pop()
                response = await client.get(key)
                if response.status == 200:
                    state[key] = response.body
                elif response.status == 404:
                    state[key] = None
                else:
                    raise AssertionError(f"GET {key!r}: status {response.status} {response.text!r}")
        finally:
            await client.close()

    await asyncio.gather(*(reader() for _ in range(min(connections, len(queue)) or 1)))
    return state
