"""Concurrent random writers recorded by an Oracle, and reading the state back.

``RandomWrites`` runs N clients, each on its own keep-alive connection, issuing PUT,
overwrite, DELETE and (if asked) a rare ``DELETE /clear`` on a shared small key space
back to back. With a ``KeyspaceMix`` they also send, on key families of their own:
``POST /txn`` transactions that write every key of a *slot* at once (some with a
condition that fails: 412, nothing applied), ``POST /txn`` increments of a *pair* of
counters by the same amount, and ``PUT ?ttl=`` with short times to live (which expire
before the state is read back) and long ones (which must survive with their deadline),
plus plain PUTs and DELETEs of those keys. With one client it is serial: one request
at a time, so the order in which they were acknowledged is total. Every request is
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
import base64
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from harness.client import (
    REQUEST_ERRORS,
    REQUEST_TIMEOUT_S,
    Connection,
    KVClient,
    Response,
    kv_path,
)
from harness.oracle import Op, OpKind, Oracle, Reading, Value, make_value


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


@dataclass(frozen=True)
class KeyspaceMix:
    """The requests beyond plain PUT and DELETE, their shares, and their keys."""

    slots: tuple[tuple[bytes, ...], ...] = ()
    """Keys a transaction writes together (every transaction writes a whole slot)."""
    counters: tuple[tuple[bytes, ...], ...] = ()
    """Counters incremented together, by the same amount."""
    timed: tuple[bytes, ...] = ()
    """Keys written with times to live (and plainly, and deleted)."""
    txn_ratio: float = 0.1
    incr_ratio: float = 0.06
    ttl_ratio: float = 0.1
    short_ttl: tuple[float, float] = (0.02, 0.4)
    """Seconds: over before the state is read back after the restart."""
    long_ttl: tuple[float, float] = (3600.0, 7200.0)
    """Seconds: must survive the restart, deadline and all."""


TXN = "txn"
INCR = "incr"
SHORT_TTL = "short ttl"
LONG_TTL = "long ttl"
REFUSED = (409, 412)
"""A transaction answered so applied nothing: a failed condition, a step that cannot run."""


@dataclass
class WriteStats:
    """What the writers saw: replies by status and connection failures by kind."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    """(kind, status) of the requests beyond plain PUT and DELETE."""

    def count(self, kind: str, acked: bool | None = True) -> int:
        """Requests of ``kind`` answered 2xx (``acked``), refused (False) or either (None)."""
        return sum(n for (k, status), n in self.requests.items() if k == kind and (
            acked is None or (200 <= status < 300 if acked else status in REFUSED)))

    @property
    def acked(self) -> int:
        """Requests answered 2xx."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        """Requests answered with any other status."""
        return sum(self.statuses.values()) - self.acked


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...

    async def close(self) -> None: ...


Conn = TypeVar("Conn", bound=_Closable)


class WriterPool(Generic[Conn]):
    """N writers, each on its own connection, until ``stop``: what every crash workload
    shares. A subclass says how to open a connection (``_open``, failing with one of
    ``_OPEN_ERRORS``) and what one writer does next (``_one_op``)."""

    _OPEN_ERRORS: tuple[type[BaseException], ...] = REQUEST_ERRORS

    def __init__(self, host: str, port: int, clients: int, seed: int) -> None:
        self.host = host
        self.port = port
        self.clients = clients
        self.stats = WriteStats()
        self._seed = seed
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def _open(self, timeout: float | None) -> Conn:
        raise NotImplementedError

    async def _one_op(self, conn: Conn, rng: random.Random) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Open every connection, then let all writers go at once."""
        conns = await asyncio.gather(*(self._open(None) for _ in range(self.clients)))
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

    async def _writer(self, conn: Conn, rng: random.Random) -> None:
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

    async def _reconnect(self) -> Conn | None:
        """A new connection, or None if the server stopped accepting (it is gone)."""
        if self._stopping:
            return None
        try:
            return await self._open(5.0)
        except self._OPEN_ERRORS as exc:
            self.stats.connection_errors[f"reconnect {type(exc).__name__}"] += 1
            return None


class RandomWrites(WriterPool[Connection]):
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
        mix: KeyspaceMix | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(host, port, clients, seed)
        self.oracle = oracle
        self.keys = list(keys)
        self.delete_ratio = delete_ratio
        self.clear_ratio = clear_ratio
        self.value_sizes = value_sizes or ValueSizes(((1.0, max_value_filler),))
        self.mix = mix

    async def _open(self, timeout: float | None) -> Connection:
        if timeout is None:
            return await Connection.open(self.host, self.port)
        return await Connection.open(self.host, self.port, timeout=timeout)

    async def _one_op(self, conn: Connection, rng: random.Random) -> None:
        roll = rng.random()
        plain = self.clear_ratio + self.delete_ratio
        mix = self.mix
        if roll < self.clear_ratio:
            await self._answer(conn.send("DELETE", "/clear"), [self.oracle.sent_clear()])
        elif roll < plain:
            await self._delete(conn, rng.choice(self.keys))
        elif mix is not None and mix.slots and roll < plain + mix.txn_ratio:
            await self._transaction(conn, rng, rng.choice(mix.slots))
        elif mix is not None and mix.counters and roll < plain + mix.txn_ratio + mix.incr_ratio:
            await self._increment(conn, rng, rng.choice(mix.counters))
        elif mix is not None and mix.timed and roll < (plain + mix.txn_ratio + mix.incr_ratio
                                                        + mix.ttl_ratio):
            await self._timed(conn, rng, mix, rng.choice(mix.timed))
        else:
            await self._put(conn, rng, rng.choice(self.keys))

    async def _delete(self, conn: Connection, key: bytes) -> None:
        reply = conn.send("DELETE", kv_path(key))
        await self._answer(reply, [self.oracle.sent(key, OpKind.DELETE, None)])

    async def _put(self, conn: Connection, rng: random.Random, key: bytes) -> None:
        seq = self.oracle.next_seq()
        value = make_value(key, seq, rng, self.value_sizes.pick(rng))
        reply = conn.send("PUT", kv_path(key), value)
        await self._answer(reply, [self.oracle.sent(key, OpKind.PUT, value, seq)])

    async def _transaction(self, conn: Connection, rng: random.Random,
                           slot: tuple[bytes, ...]) -> None:
        """Write (or delete) every key of ``slot`` at once, maybe under a condition."""
        writes: list[tuple[bytes, Value]] = []
        for key in slot:
            value = None if rng.random() < 0.15 else make_value(key, self.oracle.next_seq(), rng,
                                                                self.value_sizes.pick(rng))
            writes.append((key, value))
        check = rng.choice(["", "", "present", "absent"])
        body: dict[str, Any] = {"ops": [_txn_op(key, value) for key, value in writes]}
        if check:
            body["compare"] = [{**_field("key", slot[0]), check: True}]
        reply = conn.send("POST", "/txn", json.dumps(body).encode(), _JSON)
        await self._answer(reply, self.oracle.sent_request(writes), TXN)

    async def _increment(self, conn: Connection, rng: random.Random,
                         counters: tuple[bytes, ...]) -> None:
        """Add the same amount to each counter of a pair, in one transaction."""
        delta = rng.randrange(1, 10)
        body = {"ops": [_field("key", key) | {"op": "incr", "by": delta} for key in counters]}
        reply = conn.send("POST", "/txn", json.dumps(body).encode(), _JSON)
        await self._answer(reply, self.oracle.sent_increment(list(counters), delta), INCR)

    async def _timed(self, conn: Connection, rng: random.Random, mix: KeyspaceMix,
                     key: bytes) -> None:
        """A PUT with a short or a long time to live; sometimes a plain PUT or a DELETE."""
        roll = rng.random()
        if roll < 0.08:
            await self._delete(conn, key)
            return
        if roll < 0.2:
            await self._put(conn, rng, key)
            return
        seq = self.oracle.next_seq()
        value = make_value(key, seq, rng, self.value_sizes.pick(rng))
        kind = SHORT_TTL if roll < 0.65 else LONG_TTL
        ttl = round(rng.uniform(*(mix.short_ttl if kind == SHORT_TTL else mix.long_ttl)), 3)
        reply = conn.send("PUT", f"{kv_path(key)}?ttl={ttl:.3f}", value)
        await self._answer(reply, [self.oracle.sent(key, OpKind.PUT, value, seq, ttl=ttl)],
                           kind)

    async def _answer(self, reply: asyncio.Future[Response], ops: list[Op],
                      kind: str | None = None) -> None:
        """Wait for the reply and record it for ``ops`` (one request)."""
        try:
            response = await reply
        except REQUEST_ERRORS as exc:  # ends the connection; the writer reconnects
            self.stats.connection_errors[type(exc).__name__] += 1
            return  # the op stays unacknowledged: it may or may not have applied
        refused = kind in (TXN, INCR) and response.status in REFUSED
        self.oracle.answered_request(ops, response.status, refused)
        self.stats.statuses[response.status] += 1
        if kind is not None:
            self.stats.requests[kind, response.status] += 1

_JSON = {"Content-Type": "application/json"}


def _field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` for UTF-8, else ``{name_b64: base64}`` (the /txn JSON shape)."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


def _txn_op(key: bytes, value: Value) -> dict[str, Any]:
    if value is None:
        return {"op": "delete"} | _field("key", key)
    return {"op": "put"} | _field("key", key) | {"value_b64": base64.b64encode(value).decode()}


async def probe_keyspace_ops(host: str, port: int) -> str | None:
    """None if the server speaks ``POST /txn`` and ``PUT ?ttl=``, else what it answered."""
    key = b"walkv-crash-probe"
    client = await KVClient.open(host, port)
    try:
        return await _probe(client, key)
    except REQUEST_ERRORS as exc:
        return f"the connection failed: {type(exc).__name__}: {exc}"
    finally:
        await client.close()


async def _probe(client: KVClient, key: bytes) -> str | None:
    body = json.dumps({"ops": [{"op": "get", "key": key.decode()}]}).encode()
    txn = await client.conn.request("POST", "/txn", body, _JSON, timeout=REQUEST_TIMEOUT_S)
    if txn.status != 200:
        return f"POST /txn answered {txn.status}"
    put = await client.conn.request("PUT", kv_path(key) + "?ttl=600", b"probe",
                                    timeout=REQUEST_TIMEOUT_S)
    got = await client.get(key)
    await client.delete(key)
    await client.delete(key + b"?ttl=600")  # where a server that ignores the query put it
    ttl = got.header("walkv-ttl")
    if put.status != 200 or got.status != 200 or ttl is None:
        return (f"PUT ?ttl= answered {put.status}, then GET {got.status} "
                f"{'with' if ttl else 'without'} Walkv-TTL")
    return None


async def fetch_readings(
    host: str, port: int, keys: Sequence[bytes], *, connections: int = 8
) -> dict[bytes, Reading]:
    """GET every key over a few keep-alive connections: value (None on 404), the time to
    live the server reports (``Walkv-TTL``), and when the GET was sent and answered.

    Any other status raises AssertionError naming the key, since a recovered server
    must answer every read.
    """
    readings: dict[bytes, Reading] = {}
    queue = list(keys)

    async def reader() -> None:
        client = await KVClient.open(host, port)
        try:
            while queue:
                key = queue.pop()
                sent = time.time()
                response = await client.get(key)
                done = time.time()
                if response.status not in (200, 404):
                    raise AssertionError(f"GET {key!r}: status {response.status} {response.text!r}")
                ttl = response.header("walkv-ttl")
                value = response.body if response.status == 200 else None
                readings[key] = Reading(value, None if ttl is None else float(ttl), sent, done)
        finally:
            await client.close()

    await asyncio.gather(*(reader() for _ in range(min(connections, len(queue)) or 1)))
    return readings


async def fetch_state(
    host: str, port: int, keys: Sequence[bytes], *, connections: int = 8
) -> dict[bytes, Value]:
    """GET every key (``fetch_readings``): its value, or None on 404."""
    readings = await fetch_readings(host, port, keys, connections=connections)
    return {key: reading.value for key, reading in readings.items()}
