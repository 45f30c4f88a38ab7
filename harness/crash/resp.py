"""``python -m harness crash --protocol resp``: the same SIGKILL cycles over the Redis protocol.

The server is started with ``--resp-port`` and every request of the cycles goes to
that port (``harness.crash.respwire``: no retries, so the oracle knows exactly what
was in flight). What ``RespWrites`` sends, on the key families of the HTTP workload:

- plain keys: ``SET`` (values of mixed sizes, binary) and ``DEL``;
- *slots* of three keys, always written whole: ``MSET`` of the slot with one value,
  ``MULTI`` / ``SET`` each key / ``INCR`` the slot's counter / ``EXEC``, and a rare
  ``DEL`` of the whole slot;
- counters: ``INCRBY`` by 1 to 9;
- timed keys: ``SET``, ``DEL``, ``EXPIRE`` of an hour or two (must survive, deadline
  and all) and ``PEXPIRE`` of 20-400 ms (over by the time the state is read back).

After each restart every key is read back with ``GET`` and ``PTTL`` and checked by
the same oracle as the HTTP workload (``harness.oracle``): each key holds the result
of an op no later acknowledged write supersedes; the keys of a slot hold the values
of one request (an MSET, an EXEC, a DEL) or their values before the round; a
counter holds at least its acknowledged increments, plus those of every EXEC whose
values are visible, and at most those plus every increment in flight; a key with a
deadline got it from an EXPIRE that may have reached its value, and a value an
acknowledged EXPIRE surely reached has one. File damage, serial cycles and the report
are the HTTP loop's (``harness.crash.torture``).

Replies are counted in the oracle's terms (``ACKED``, ``REFUSED``, ``FAILED``): a
reply that is not an error acknowledges the request; ``EXECABORT`` (or a null EXEC
reply) says that nothing was applied; any other error is an answer that
acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.crash.respwire import (
    RESP_ERRORS,
    Command,
    ErrorReply,
    Reply,
    RespConnection,
)
from harness.crash.torture import CrashConfig, CrashLoop, keyspace_mix
from harness.crash.workload import INCR, MIXED_VALUES, KeyspaceMix, ValueSizes, WriterPool
from harness.errors import HarnessError
from harness.oracle import Op, OpKind, Oracle, Reading, ReadWindow, Violation, make_value
from harness.proc import ServerProcess, free_port

MSET = "mset"
EXEC = "exec"
SLOT_DEL = "del of a slot"
SHORT_EXPIRE = "short expire"
LONG_EXPIRE = "long expire"

ACKED = 200
"""A reply that is not an error: the request is acknowledged (the oracle's 2xx)."""
REFUSED = 409
"""EXECABORT or a null EXEC reply: the server applied nothing of the request."""
FAILED = 500
"""Any other error reply: answered, not acknowledged (it may have applied)."""

Judge = Callable[[list[Reply]], int]
"""A request's replies -> ACKED, REFUSED or FAILED."""


@dataclass(frozen=True)
class RespMix(KeyspaceMix):
    """The HTTP workload's key families, plus one counter per slot that its EXECs
    increment (those counters are among ``counters`` too, each on its own)."""

    slot_counters: tuple[bytes, ...] = ()
    mset_share: float = 0.45
    exec_share: float = 0.45
    """Of the multi-key requests (``txn_ratio``): MSET, EXEC, and the rest slot DELs."""


def resp_mix(config: CrashConfig) -> RespMix:
    """The key families of ``config`` (``counter_pairs`` * 2 lone counters)."""
    http = keyspace_mix(config)
    slot_counters = tuple(b"slot:%03d/n" % i for i in range(len(http.slots)))
    lone = tuple(b"counter:%02d" % i for i in range(2 * config.counter_pairs))
    return RespMix(slots=http.slots, counters=tuple((k,) for k in lone + slot_counters),
                   timed=http.timed, txn_ratio=config.txn_ratio, incr_ratio=config.incr_ratio,
                   ttl_ratio=config.ttl_ratio, slot_counters=slot_counters)


def _ok(replies: list[Reply]) -> int:
    last = replies[-1]
    return ACKED if last == b"OK" else FAILED


def _integer(replies: list[Reply]) -> int:
    last = replies[-1]
    return ACKED if isinstance(last, int) else FAILED


def _exec(replies: list[Reply]) -> int:
    last = replies[-1]
    if last is None or (isinstance(last, ErrorReply) and last.message.startswith(b"EXECABORT")):
        return REFUSED
    if isinstance(last, list) and not any(isinstance(item, ErrorReply) for item in last):
        return ACKED
    return FAILED


class RespWrites(WriterPool[RespConnection]):
    """N concurrent RESP clients writing the families of ``mix``, recorded in ``oracle``."""

    _OPEN_ERRORS = RESP_ERRORS

    def __init__(self, host: str, port: int, oracle: Oracle, keys: Sequence[bytes],
                 mix: RespMix, *, clients: int = 32, delete_ratio: float = 0.25,
                 value_sizes: ValueSizes = MIXED_VALUES, seed: int = 0) -> None:
        super().__init__(host, port, clients, seed)
        self.oracle = oracle
        self.keys = list(keys)
        self.mix = mix
        self.delete_ratio = delete_ratio
        self.value_sizes = value_sizes

    async def _open(self, timeout: float | None) -> RespConnection:
        if timeout is None:
            return await RespConnection.open(self.host, self.port)
        return await RespConnection.open(self.host, self.port, timeout=timeout)

    async def _one_op(self, conn: RespConnection, rng: random.Random) -> None:
        mix = self.mix
        roll = rng.random()
        if roll < mix.txn_ratio:
            await self._slot_write(conn, rng, rng.randrange(len(mix.slots)))
        elif roll < mix.txn_ratio + mix.incr_ratio:
            await self._increment(conn, rng, rng.choice(mix.counters)[0])
        elif roll < mix.txn_ratio + mix.incr_ratio + mix.ttl_ratio:
            await self._timed(conn, rng, rng.choice(mix.timed))
        elif rng.random() < self.delete_ratio:
            await self._delete(conn, rng.choice(self.keys))
        else:
            await self._set(conn, rng, rng.choice(self.keys))

    def _value(self, key: bytes, rng: random.Random) -> tuple[int, bytes]:
        seq = self.oracle.next_seq()
        return seq, make_value(key, seq, rng, self.value_sizes.pick(rng))

    async def _set(self, conn: RespConnection, rng: random.Random, key: bytes) -> None:
        seq, value = self._value(key, rng)
        ops = [self.oracle.sent(key, OpKind.PUT, value, seq)]
        await self._send(conn, [(b"SET", key, value)], ops, _ok)

    async def _delete(self, conn: RespConnection, key: bytes) -> None:
        ops = self.oracle.sent_request([(key, None)])
        await self._send(conn, [(b"DEL", key)], ops, _integer)

    async def _slot_write(self, conn: RespConnection, rng: random.Random, index: int) -> None:
        """MSET, MULTI/EXEC or DEL of every key of slot ``index``."""
        slot, roll = self.mix.slots[index], rng.random()
        if roll < self.mix.mset_share:
            _, value = self._value(slot[0].rpartition(b"/")[0], rng)
            ops = self.oracle.sent_request([(key, value) for key in slot])
            mset: Command = [b"MSET", *(part for key in slot for part in (key, value))]
            await self._send(conn, [mset], ops, _ok, MSET)
        elif roll < self.mix.mset_share + self.mix.exec_share:
            writes = [(key, self._value(key, rng)[1]) for key in slot]
            counter = self.mix.slot_counters[index]
            ops = self.oracle.sent_request(list(writes), [(counter, 1)])
            commands: list[Command] = [(b"MULTI",), *((b"SET", k, v) for k, v in writes),
                                       (b"INCR", counter), (b"EXEC",)]
            await self._send(conn, commands, ops, _exec, EXEC)
        else:
            ops = self.oracle.sent_request([(key, None) for key in slot])
            await self._send(conn, [(b"DEL", *slot)], ops, _integer, SLOT_DEL)

    async def _increment(self, conn: RespConnection, rng: random.Random, key: bytes) -> None:
        delta = rng.randrange(1, 10)
        ops = self.oracle.sent_increment([key], delta)
        await self._send(conn, [(b"INCRBY", key, delta)], ops, _integer, INCR)

    async def _timed(self, conn: RespConnection, rng: random.Random, key: bytes) -> None:
        """SET, DEL, or a short PEXPIRE or a long EXPIRE of a timed key."""
        roll = rng.random()
        if roll < 0.05:
            await self._delete(conn, key)
        elif roll < 0.35:
            await self._set(conn, rng, key)
        elif roll < 0.65:
            ms = round(rng.uniform(*self.mix.short_ttl) * 1000)
            ops = [self.oracle.sent_expire(key, ms / 1000)]
            await self._send(conn, [(b"PEXPIRE", key, ms)], ops, _integer, SHORT_EXPIRE)
        else:
            seconds = round(rng.uniform(*self.mix.long_ttl))
            ops = [self.oracle.sent_expire(key, seconds)]
            await self._send(conn, [(b"EXPIRE", key, seconds)], ops, _integer, LONG_EXPIRE)

    async def _send(self, conn: RespConnection, commands: list[Command], ops: list[Op],
                    judge: Judge, kind: str | None = None) -> None:
        """Send one request (its commands in one write), record its answer for ``ops``."""
        try:
            replies = await conn.call(commands)
        except RESP_ERRORS as exc:  # the writer reconnects; the ops stay unanswered
            self.stats.connection_errors[type(exc).__name__] += 1
            return
        status = judge(replies)
        self.oracle.answered_request(ops, status, refused=status == REFUSED)
        self.stats.statuses[status] += 1
        if kind is not None:
            self.stats.requests[kind, status] += 1


async def probe_resp(host: str, port: int) -> str | None:
    """None if the server answers PING, MULTI/EXEC with SET and PEXPIRE, and PTTL as
    Redis does; else what it answered."""
    key = b"walkv-crash-probe"
    commands: list[Command] = [(b"PING",), (b"MULTI",), (b"SET", key, b"probe"),
                               (b"PEXPIRE", key, 600_000), (b"EXEC",), (b"PTTL", key),
                               (b"DEL", key)]
    try:
        conn = await RespConnection.open(host, port)
        try:
            replies = await conn.call(commands)
        finally:
            await conn.close()
    except RESP_ERRORS as exc:
        return f"the connection failed: {type(exc).__name__}: {exc}"
    ping, multi, _, _, done, pttl, _ = replies
    if ping != b"PONG" or multi != b"OK" or done != [b"OK", 1] or not (
            isinstance(pttl, int) and pttl > 0):
        return f"PING, MULTI, SET, PEXPIRE, EXEC, PTTL, DEL answered {replies!r}"
    return None


def _reading(key: bytes, value: Reply, pttl: Reply, sent: float, done: float) -> Reading:
    if not (value is None or isinstance(value, bytes)) or not isinstance(pttl, int):
        raise AssertionError(f"GET/PTTL {key!r}: replies {value!r}, {pttl!r}")
    if value is None or pttl == -1:
        return Reading(value, None, sent, done)
    return Reading(value, max(pttl, 0) / 1000, sent, done)  # -2: expired since the GET


async def fetch_resp_readings(host: str, port: int, keys: Sequence[bytes], *,
                              connections: int = 8, batch: int = 64) -> dict[bytes, Reading]:
    """``GET`` and ``PTTL`` every key, pipelined in batches over a few connections: its
    value (None if absent), time to live, and when its batch was sent and answered.

    Any reply other than a value or null (and an integer for PTTL) raises
    AssertionError naming the key, since a recovered server must answer every read.
    """
    readings: dict[bytes, Reading] = {}
    queue = list(keys)

    async def reader() -> None:
        conn = await RespConnection.open(host, port)
        try:
            while queue:
                chunk = [queue.pop() for _ in range(min(batch, len(queue)))]
                commands = [c for key in chunk for c in ((b"GET", key), (b"PTTL", key))]
                sent = time.time()
                replies = await conn.call(commands)
                done = time.time()
                for i, key in enumerate(chunk):
                    readings[key] = _reading(key, replies[2 * i], replies[2 * i + 1], sent, done)
        finally:
            await conn.close()

    await asyncio.gather(*(reader() for _ in range(min(connections, len(queue)) or 1)))
    return readings


class RespCrashLoop(CrashLoop):
    """The crash cycles of ``CrashLoop`` with every request over the Redis protocol."""

    protocol = "resp"
    request_kinds = (MSET, EXEC, SLOT_DEL, INCR, SHORT_EXPIRE, LONG_EXPIRE)
    refusable_kinds = (EXEC,)
    mix: RespMix

    def _make_server(self, work_dir: Path, resp_port: int | None = None) -> ServerProcess:
        return super()._make_server(work_dir, resp_port=resp_port or free_port())

    def _make_mix(self) -> RespMix:
        return resp_mix(self.config)

    def _writers(self, rng: random.Random, serial: bool) -> RespWrites:
        host, port = self.server.resp_address
        return RespWrites(host, port, self.oracle, self.keys, self.mix,
                          clients=1 if serial else self.config.clients,
                          delete_ratio=self.config.delete_ratio, seed=rng.randrange(1 << 30))

    async def _probe(self) -> None:
        missing = await probe_resp(*self.server.resp_address)
        if missing is not None:
            raise HarnessError(f"the target does not speak the Redis protocol: {missing}")
        self.use_mix = True  # requests write several records: no LSN-to-op mapping
        self.stats.keyspace_ops = "on"

    async def _read_back(self) -> dict[bytes, Reading]:
        host, port = self.server.resp_address
        return await fetch_resp_readings(host, port, self.every_key)

    def _deadline_violations(self, readings: Mapping[bytes, Reading], window: ReadWindow,
                             unsure: frozenset[int]) -> list[Violation]:
        timed = set(self.mix.timed)
        plain = {k: r for k, r in readings.items() if k not in timed}
        expiring = {k: r for k, r in readings.items() if k in timed}
        return (self.oracle.deadline_violations(plain, window)
                + self.oracle.expire_violations(expiring, unsure))

    def keyspace_summary(self) -> str:
        """The report's line on the requests beyond plain SET and DEL."""
        n = self.stats.requests
        return (f"{n[MSET]:,} MSETs, {n[EXEC]:,} MULTI/EXECs ({n['refused ' + EXEC]:,} "
                f"aborted), {n[SLOT_DEL]:,} DELs of a slot, {n[INCR]:,} INCRBYs, "
                f"{n[SHORT_EXPIRE]:,} short and {n[LONG_EXPIRE]:,} long EXPIREs (acknowledged)")


__all__ = ["RespCrashLoop", "RespMix", "RespWrites", "fetch_resp_readings", "probe_resp",
           "resp_mix"]
