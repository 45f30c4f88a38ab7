"""``python -m harness crash``: SIGKILL torture of a real server, with file damage.

Theory of operation
-------------------
One server process (``<target>/run.sh``) on one working directory lives through
many cycles. Each cycle:

1. **Write.** Clients issue random PUT / DELETE / rare ``DELETE /clear`` on a shared
   key space, values of mixed sizes (binary, some up to 1 MiB). When the target
   speaks them (probed once at the first start), also ``POST /txn`` transactions
   writing whole *slots* of keys (some under a condition that fails), ``POST /txn``
   increments of *pairs* of counters, and ``PUT ?ttl=`` with short times to live
   (over by the time the state is read back) and long ones (``harness/crash/
   workload.py``). Concurrent mode: ``--clients`` keep-alive connections; serial mode:
   one request at a time, so the acknowledged order is total. Every op is recorded in
   an ``Oracle`` when sent and stamped when answered.
2. **Kill.** After a random time the process group gets SIGKILL while requests are
   in flight; the oracle's unanswered ops are exactly those in flight.
3. **Damage** (every ``--damage-every`` cycles, walkv's format only): the server is
   down, ``harness/crash/damage.py`` tears the log tail, flips a bit in an older frame,
   deletes a middle segment or damages snapshots, and says what a correct server
   must then do.
4. **Restart and verify.** The server is started on the same port and directory
   (a refusal is expected for damage before the tail: its one error line must name
   the file and offset, and ``--recovery=point-in-time`` must then recover a prefix).
   The whole key space is read back and checked: every key must hold the result of
   its last acknowledged op, unless an op on it (or a clear) was in flight, in which
   case any of those outcomes is allowed; a value whose time to live surely ran out
   before the reads must read 404, and a value read back must carry the deadline it
   was written with (``Walkv-TTL``); the keys of a slot must hold the values of one
   transaction; each counter must hold at least its acknowledged increments and at
   most those plus the ones in flight, and the two counters of a pair the same.

What is asserted
----------------
* Serial cycles know the total order, so the check is exact: the whole store must
  equal the state after every acknowledged op, with or without the op in flight at
  the kill. After damage the log frames map to ops by LSN (the cycle's first LSN is
  the name of the segment the server creates at start), so the store must equal the
  state just before the first destroyed record: a prefix of the acknowledged
  history that includes everything acknowledged before the damaged frame.
* Concurrent cycles have only a partial order (a reply seen before a send). The
  check is per key (``harness/oracle.py``): the value must be the result of an op
  that no later acknowledged op supersedes. After damage, ops whose records were
  destroyed are taken out of the history (a PUT is identified by its unique value;
  a DELETE or CLEAR record could be any of its kind on that key, so those only stop
  superseding). Per key, then, everything acknowledged before the damage must still
  be there, and nothing else may appear; a cross-key "prefix" is not asserted.
* Transactions, counters and deadlines are checked in every mode (``Oracle.torn_groups``,
  ``counter_violations``, ``deadline_violations``); counters and keys with times to
  live are left out of the serial cycles' exact state (their values are sums, or
  depend on when they were read).
* SIGKILL leaves the page cache intact, so it cannot catch a server that
  acknowledges before fsync; that is what ``python -m harness powerloss`` is for.

The run stops at the first cycle with a violation (later cycles would only repeat
it), keeps the working directory and logs, and reports the seed. The seed fixes
every random choice (workload, kill instants, damage), but not the timing of the
server, so a rerun reproduces the scenario rather than the exact interleaving.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import shlex
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.crash.damage import Damage, DamageKind, Expect, Refusal, inflict, newest_segment_lsn
from harness.crash.workload import (
    INCR,
    LONG_TTL,
    MIXED_VALUES,
    SHORT_TTL,
    TXN,
    KeyspaceMix,
    RandomWrites,
    WriteStats,
    fetch_readings,
    probe_keyspace_ops,
)
from harness.errors import HarnessError, ServerStartError
from harness.history import State, exact_violations, serial_candidates, states_along
from harness.oracle import Op, OpKind, Oracle, Reading, ReadWindow, Value, Violation, ViolationKind
from harness.proc import REPO, ServerProcess, bootstrap_target
from harness.report import Finding, Report, seconds_summary
from storage import Op as RecordOp
from storage import Record

WALKV_SERVER_ARGS = ("--segment-bytes=1M", "--checkpoint-bytes=4M")
"""Flags for this repository's server: small segments and frequent checkpoints, so
rotations, forked snapshots and WAL deletions happen inside the kill window."""

POINT_IN_TIME = "--recovery=point-in-time"


class Mode(enum.Enum):
    """How clients write in a cycle."""

    CONCURRENT = "concurrent"
    SERIAL = "serial"
    MIXED = "mixed"
    """Each cycle is serial with probability ``serial_share``, else concurrent."""


class Failure(enum.Enum):
    """Process-level violations (key-level ones are ``ViolationKind``)."""

    NO_RESTART = "server did not restart"
    NOT_REFUSED = "corruption not refused"
    UNCLEAR_REFUSAL = "refusal not explained"


@dataclass(frozen=True)
class CrashConfig:
    """One crash run. Every default is what ``python -m harness crash`` uses."""

    target: Path = REPO
    cycles: int = 200
    seed: int = 0
    duration_s: float | None = None
    """Stop starting new cycles after this many seconds."""
    clients: int = 32
    keys: int = 1000
    mode: Mode = Mode.MIXED
    serial_share: float = 0.25
    damage: tuple[DamageKind, ...] = tuple(DamageKind)
    damage_every: int = 3
    """Damage the files after every Nth kill (0: never)."""
    kill_after: tuple[float, float] = (0.05, 1.0)
    """Seconds of writing before the kill: uniform in this range."""
    server_args: tuple[str, ...] = WALKV_SERVER_ARGS
    delete_ratio: float = 0.25
    clear_ratio: float = 0.001
    keyspace_ops: bool | None = None
    """Transactions, increments and times to live: None uses them if the target speaks
    them (probed at the first start), True requires them, False leaves them out."""
    slots: int = 48
    """Groups of three keys that transactions write together."""
    counter_pairs: int = 6
    timed_keys: int = 48
    txn_ratio: float = 0.1
    incr_ratio: float = 0.06
    ttl_ratio: float = 0.1


@dataclass
class CrashStats:
    """What the run measured."""

    cycles: int = 0
    serial_cycles: int = 0
    exact_checks: int = 0
    """Serial cycles whose whole state was checked against the total order."""
    acked_ops: int = 0
    unacked_ops: int = 0
    non_2xx: int = 0
    in_flight_at_kill: int = 0
    kills_with_in_flight: int = 0
    write_seconds: float = 0.0
    restart_seconds: list[float] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    """Acknowledged (and refused) requests beyond PUT and DELETE, by kind."""
    keyspace_ops: str = "not probed"
    damage_applied: Counter[str] = field(default_factory=Counter)
    damage_skipped: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)


def _keys(count: int) -> list[bytes]:
    return [f"crash:{i:05d}/ключ".encode() for i in range(count)]


def keyspace_mix(config: CrashConfig) -> KeyspaceMix:
    """The key families and shares of the requests beyond PUT and DELETE."""
    return KeyspaceMix(
        slots=tuple(tuple(b"slot:%03d/%s" % (i, part) for part in (b"a", b"b", b"c"))
                    for i in range(config.slots)),
        counters=tuple((b"counter:%02d/a" % i, b"counter:%02d/b" % i)
                       for i in range(config.counter_pairs)),
        timed=tuple(b"ttl:%03d" % i for i in range(config.timed_keys)),
        txn_ratio=config.txn_ratio, incr_ratio=config.incr_ratio, ttl_ratio=config.ttl_ratio)


def _matches(op: Op, record: Record) -> bool:
    code, key, value = record
    return int(op.kind) == int(code) and op.key == key and op.value == value


class Writers(Protocol):
    """Concurrent clients recording their requests in an oracle (one per protocol)."""

    stats: WriteStats

    async def start(self) -> None:
        """Open every connection, then let all writers go at once."""

    def stop(self) -> None:
        """No writer sends another request after this call."""

    async def join(self, timeout: float = 30.0) -> None:
        """Wait for every writer to finish its outstanding request and exit."""


class CrashLoop:
    """Runs the cycles (see the module docstring); ``run`` returns the findings.

    This class speaks HTTP to the target; ``harness.crash.resp.RespCrashLoop`` runs
    the same cycles over the Redis protocol by overriding the ``_make_*``,
    ``_writers``, ``_read_back``, ``_probe`` and ``_deadline_violations`` hooks.
    """

    protocol = "http"
    request_kinds: tuple[str, ...] = (TXN, INCR, SHORT_TTL, LONG_TTL)
    """Request kinds beyond plain writes that the report counts (acknowledged)."""
    refusable_kinds: tuple[str, ...] = (TXN,)
    """Request kinds whose refusals (applied nothing) the report counts too."""

    def __init__(self, config: CrashConfig, work_dir: Path,
                 on_cycle: Callable[[int, CrashStats], None] | None = None) -> None:
        self.config = config
        self.data_dir = work_dir / "data"
        self.server = self._make_server(work_dir)
        self.keys = _keys(config.keys)
        self.mix = self._make_mix()
        self.every_key = self.keys + [k for group in self.mix.slots + self.mix.counters
                                      for k in group] + list(self.mix.timed)
        self.oracle = self._make_oracle()
        self.use_mix = False
        self.stats = CrashStats()
        self.findings: list[Finding] = []
        self._on_cycle = on_cycle
        self._cycle_lsn: int | None = None
        self._damage_turn = 0

    # -- what the protocol decides ------------------------------------------------------
    def _make_server(self, work_dir: Path, resp_port: int | None = None) -> ServerProcess:
        return ServerProcess(
            self.config.target,
            os.path.relpath(self.data_dir, self.config.target.resolve()),
            log_dir=work_dir / "logs",
            resp_port=resp_port,
            extra_args=self.config.server_args,
            name="server",
        )

    def _make_mix(self) -> KeyspaceMix:
        return keyspace_mix(self.config)

    def _make_oracle(self) -> Oracle:
        return Oracle(dict.fromkeys(self.every_key),
                      counters=frozenset(k for pair in self.mix.counters for k in pair),
                      groups=self.mix.slots + self.mix.counters)

    def _writers(self, rng: random.Random, serial: bool) -> Writers:
        config = self.config
        return RandomWrites(
            self.server.connect_host, self.server.port, self.oracle, self.keys,
            clients=1 if serial else config.clients, delete_ratio=config.delete_ratio,
            clear_ratio=config.clear_ratio, value_sizes=MIXED_VALUES,
            mix=self.mix if self.use_mix else None, seed=rng.randrange(1 << 30),
        )

    async def _read_back(self) -> dict[bytes, Reading]:
        return await fetch_readings(self.server.connect_host, self.server.port, self.every_key)

    def _deadline_violations(self, readings: Mapping[bytes, Reading], window: ReadWindow,
                             unsure: frozenset[int]) -> list[Violation]:
        return self.oracle.deadline_violations(readings, window)

    def keyspace_summary(self) -> str:
        """The report's line on the requests beyond plain writes."""
        return _keyspace_row(self.stats)

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> list[Finding]:
        """Run until ``cycles``, the time limit, or the first violation."""
        deadline = None
        if self.config.duration_s is not None:
            deadline = time.monotonic() + self.config.duration_s
        try:
            await asyncio.to_thread(self.server.start)
            await self._probe()
            self._cycle_lsn = newest_segment_lsn(self.data_dir)
            for cycle in range(self.config.cycles):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                await self._cycle(cycle)
                self.stats.cycles += 1
                if self._on_cycle is not None:
                    self._on_cycle(cycle, self.stats)
                if self.findings:
                    break
        finally:
            self.server.close()
        return self.findings

    async def _probe(self) -> None:
        """Decide whether this run sends transactions, increments and times to live."""
        wanted = self.config.keyspace_ops
        if wanted is False:
            self.stats.keyspace_ops = "off (not asked for)"
            return
        missing = await probe_keyspace_ops(self.server.connect_host, self.server.port)
        if missing is not None and wanted:
            raise HarnessError(f"the target does not speak transactions or ttls: {missing}")
        self.use_mix = missing is None
        self.stats.keyspace_ops = "on" if missing is None else f"off: {missing}"

    async def _cycle(self, cycle: int) -> None:
        rng = random.Random(f"{self.config.seed}:{cycle}")
        serial = self.config.mode is Mode.SERIAL or (
            self.config.mode is Mode.MIXED and rng.random() < self.config.serial_share)
        self.stats.serial_cycles += serial
        cycle_lsn = self._cycle_lsn
        killed_at = await self._write_then_kill(rng, serial)
        damage = self._damage(cycle, rng)
        read = await self._restart(cycle, damage)
        if read is None:
            return
        readings, started = read
        window = ReadWindow(started, time.time(), killed_at)
        recovered = {key: reading.value for key, reading in readings.items()}
        violations = self._verify(recovered, readings, window, serial, damage, cycle_lsn)
        where = f"cycle {cycle} ({'serial' if serial else 'concurrent'}"
        where += f", after {damage.kind.value}: {damage.description})" if damage else ")"
        for violation in violations:
            self._found(violation.kind.value, where, violation.describe())
        self.oracle = self.oracle.next_round(recovered, window)

    async def _write_then_kill(self, rng: random.Random, serial: bool) -> float:
        """Write, kill; the wall clock at the kill."""
        config = self.config
        writes = self._writers(rng, serial)
        started = time.monotonic()
        await writes.start()
        await asyncio.sleep(rng.uniform(*config.kill_after))
        # Nothing runs on the loop between these calls: the unanswered ops are
        # exactly the ones in flight at the kill.
        writes.stop()
        self.server.kill()
        killed_at = time.time()
        in_flight = len(self.oracle.unanswered())
        self.stats.write_seconds += time.monotonic() - started
        await writes.join()
        stats = self.stats
        stats.in_flight_at_kill += in_flight
        stats.kills_with_in_flight += in_flight > 0
        stats.acked_ops += writes.stats.acked
        stats.non_2xx += writes.stats.non_2xx
        stats.unacked_ops += sum(op.acked is None for op in self.oracle.log)
        for kind in self.request_kinds:
            stats.requests[kind] += writes.stats.count(kind)
        for kind in self.refusable_kinds:
            stats.requests["refused " + kind] += writes.stats.count(kind, acked=False)
        return killed_at

    # -- damage -----------------------------------------------------------------------
    def _damage(self, cycle: int, rng: random.Random) -> Damage | None:
        kinds, every = self.config.damage, self.config.damage_every
        if not kinds or every <= 0 or (cycle + 1) % every or self._cycle_lsn is None:
            return None
        turn = self._damage_turn
        self._damage_turn += 1
        for i in range(len(kinds)):
            kind = kinds[(turn + i) % len(kinds)]
            damage = inflict(kind, self.data_dir, rng, self._cycle_lsn)
            if damage is not None:
                self.stats.damage_applied[kind.value] += 1
                return damage
            self.stats.damage_skipped[kind.value] += 1
        return None

    # -- restart ----------------------------------------------------------------------
    async def _restart(self, cycle: int,
                       damage: Damage | None) -> tuple[dict[bytes, Reading], float] | None:
        """Bring the server back as the damage requires; the state read back (and when
        the reads began), or None."""
        where = f"cycle {cycle}" + (f" after {damage.kind.value}: {damage.description}"
                                    if damage else "")
        expect = damage.expect if damage is not None else Expect.RECOVER
        if expect is not Expect.RECOVER:
            assert damage is not None and damage.refusal is not None
            if not await self._refuses(damage.refusal, where, ()):
                return None
            if expect is Expect.REFUSE:
                if not await self._refuses(damage.refusal, where + " (point-in-time)",
                                           (POINT_IN_TIME,)):
                    return None
                damage.restore()
        extra = (POINT_IN_TIME,) if expect is Expect.REFUSE_THEN_PREFIX else ()
        if not await self._start(where, extra):
            return None
        self._cycle_lsn = newest_segment_lsn(self.data_dir)
        started = time.time()
        return await self._read_back(), started

    async def _start(self, where: str, extra: tuple[str, ...]) -> bool:
        base = self.server.extra_args
        self.server.extra_args = base + extra
        try:
            seconds = await asyncio.to_thread(self.server.start)
        except ServerStartError as exc:
            self._found(Failure.NO_RESTART.value, where, f"{exc.reason}: {_tail(exc.stderr)}")
            return False
        finally:
            self.server.extra_args = base
        self.stats.restart_seconds.append(seconds)
        return True

    async def _refuses(self, refusal: Refusal, where: str, extra: tuple[str, ...]) -> bool:
        """Start, expecting a refusal explained by one line; records what went wrong."""
        base = self.server.extra_args
        self.server.extra_args = base + extra
        try:
            await asyncio.to_thread(self.server.start)
        except ServerStartError as exc:
            return self._refusal_explained(refusal, where, exc)
        finally:
            self.server.extra_args = base
        self.server.kill()
        self._found(Failure.NOT_REFUSED.value, where, "the server started and served requests")
        return False

    def _refusal_explained(self, refusal: Refusal, where: str, exc: ServerStartError) -> bool:
        lines = [line for line in exc.stderr.splitlines() if line.strip()]
        if exc.returncode is None:
            self.server.kill()
            problem = "neither started nor exited in time"
        elif exc.returncode == 0:
            problem = "exited with status 0"
        elif "Traceback" in exc.stderr:
            problem = "printed a traceback"
        elif not lines or not refusal.explained_by(lines[-1]):
            offset = "" if refusal.offset is None else f" and offset {refusal.offset}"
            problem = f"last stderr line does not name {' or '.join(refusal.names)}{offset}"
        else:
            return True
        self._found(Failure.UNCLEAR_REFUSAL.value, where, f"{problem}: {_tail(exc.stderr)}")
        return False

    # -- verification -----------------------------------------------------------------
    def _verify(self, recovered: Mapping[bytes, Value], readings: Mapping[bytes, Reading],
                window: ReadWindow, serial: bool, damage: Damage | None,
                cycle_lsn: int | None) -> list[Violation]:
        removed = damage.removed if damage is not None else []
        lost, unsure = self._removed_ops(removed)
        oracle = self.oracle
        damaged = frozenset(key for _, key, _ in removed if key in oracle.counters)
        found = (oracle.counter_violations(recovered, damaged) + oracle.torn_groups(recovered, lost)
                 + self._deadline_violations(readings, window, unsure))
        if serial:
            candidates = self._serial_candidates(damage, cycle_lsn)
            if candidates is not None:
                self.stats.exact_checks += 1
                exact = set(self.keys) | {k for slot in self.mix.slots for k in slot}
                states = [{k: v for k, v in c.items() if k in exact} for c in candidates]
                found += exact_violations(oracle, {k: recovered.get(k) for k in exact}, states,
                                          lost, unsure)
                return found + oracle.check(recovered, lost, unsure, window,
                                            keys=self.mix.timed).violations
        return found + oracle.check(recovered, lost, unsure, window).violations

    def _serial_candidates(self, damage: Damage | None,
                           cycle_lsn: int | None) -> list[State] | None:
        """The exact states allowed in a serial cycle, or None to check per key.

        A destroyed PUT record names its op by its unique value: the state is the one
        before that op's request. Otherwise, when every request of the cycle was a
        plain write (one record each, LSNs from ``cycle_lsn`` on, in send order), the
        first destroyed record's LSN says how many ops came before it.
        """
        if damage is None or not damage.removed:
            return serial_candidates(self.oracle)
        log = [op for op in self.oracle.log if not op.refused]
        code, key, value = damage.removed[0]
        if code == RecordOp.PUT:
            index = next((i for i, op in enumerate(log)
                          if op.kind is OpKind.PUT and op.key == key and op.value == value), None)
            if index is not None:
                index = next(i for i, op in enumerate(log) if op.request == log[index].request)
        elif damage.removed_first_lsn is None or cycle_lsn is None or self.use_mix:
            return None
        else:
            index = damage.removed_first_lsn - cycle_lsn
            if not 0 <= index < len(log) or not _matches(log[index], damage.removed[0]):
                return None
        if index is None or any(op.acked is None for op in log[:index]):
            return None
        initial = {k: v for k, v in self.oracle.initial.items() if k not in self.oracle.counters}
        return [states_along(initial, log[:index])[-1]]

    def _removed_ops(self, records: list[Record]) -> tuple[frozenset[int], frozenset[int]]:
        """(lost, unsure) op seqs for records that damage destroyed (see oracle.py)."""
        lost: set[int] = set()
        unsure: set[int] = {op.seq for op in self.oracle.log if records and op.evaluated
                            and op.kind is OpKind.DELETE}
        for code, key, value in records:
            if code == RecordOp.PUT:
                lost.update(op.seq for op in self.oracle.ops.get(key, [])
                            if op.kind is OpKind.PUT and op.value == value)
            elif code == RecordOp.DELETE:
                unsure.update(op.seq for op in self.oracle.ops.get(key, [])
                              if op.kind is OpKind.DELETE)
            elif code == RecordOp.EXPIRE:
                unsure.update(op.seq for op in self.oracle.ops.get(key, [])
                              if op.kind is OpKind.EXPIRE)
            else:
                unsure.update(op.seq for op in self.oracle.clears)
        return frozenset(lost), frozenset(unsure)

    def _found(self, kind: str, where: str, detail: str) -> None:
        self.stats.violations[kind] += 1
        self.findings.append(Finding(kind, where, detail))


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "<no output>"


def crash_report(config: CrashConfig, stats: CrashStats, findings: list[Finding],
                 elapsed_s: float, work_dir: Path, kept: bool = True, protocol: str = "http",
                 keyspace: str | None = None) -> Report:
    """The summary table and JSON report of a crash run (``keyspace``: the line on the
    requests beyond plain writes, by default the HTTP workload's)."""
    restart = seconds_summary(stats.restart_seconds)
    ops_per_s = stats.acked_ops / stats.write_seconds if stats.write_seconds else 0.0
    damage = {kind: {"applied": stats.damage_applied[kind], "not applicable":
                     stats.damage_skipped[kind]} for kind in sorted(
                         set(stats.damage_applied) | set(stats.damage_skipped))}
    damage_text = ", ".join(f"{k} {v['applied']}" for k, v in damage.items()) or "none"
    violations = {kind: stats.violations[kind] for kind in _VIOLATION_KINDS}
    rows = [
        ("target", f"{config.target} ({protocol})"),
        ("cycles (SIGKILL + restart)", f"{stats.cycles} ({stats.serial_cycles} serial, "
         f"{stats.exact_checks} checked exactly)"),
        ("acknowledged ops", f"{stats.acked_ops:,} ({ops_per_s:,.0f}/s while writing)"),
        ("unacknowledged ops", f"{stats.unacked_ops:,} ({stats.non_2xx} non-2xx replies)"),
        ("in flight at the kills", f"{stats.in_flight_at_kill:,} "
         f"({stats.kills_with_in_flight} of {stats.cycles} kills mid-request)"),
        ("restart time p50 / max", f"{restart['p50'] * 1000:.0f} ms / "
         f"{restart['max'] * 1000:.0f} ms ({len(stats.restart_seconds)} starts)"),
        ("keyspace operations", _keyspace_row(stats) if keyspace is None else keyspace),
        ("damage applied", damage_text),
        *((kind, str(count)) for kind, count in violations.items()),
        ("elapsed", f"{elapsed_s:.1f} s"),
        ("working directory", str(work_dir) if kept else f"{work_dir} (removed)"),
    ]
    data = {
        "target": str(config.target),
        "protocol": protocol,
        "cycles": stats.cycles,
        "serial_cycles": stats.serial_cycles,
        "exact_checks": stats.exact_checks,
        "acked_ops": stats.acked_ops,
        "acked_ops_per_s": ops_per_s,
        "unacked_ops": stats.unacked_ops,
        "non_2xx": stats.non_2xx,
        "in_flight_at_kill": stats.in_flight_at_kill,
        "kills_with_in_flight": stats.kills_with_in_flight,
        "restart_s": restart,
        "restarts": len(stats.restart_seconds),
        "keyspace_ops": stats.keyspace_ops,
        "requests": dict(stats.requests),
        "damage": damage,
        "violations": violations,
        "elapsed_s": elapsed_s,
        "work_dir": str(work_dir),
        "config": {
            "clients": config.clients, "keys": config.keys, "mode": config.mode.value,
            "damage": [k.value for k in config.damage], "damage_every": config.damage_every,
            "kill_after": list(config.kill_after), "server_args": list(config.server_args),
        },
    }
    return Report("walkv crash harness", config.seed, rows, data, findings,
                  _command(config, stats.cycles, protocol))


def _keyspace_row(stats: CrashStats) -> str:
    if stats.keyspace_ops != "on":
        return stats.keyspace_ops
    counts = stats.requests
    return (f"{counts[TXN]:,} transactions ({counts['refused ' + TXN]:,} refused by their "
            f"condition), {counts[INCR]:,} increments, {counts[SHORT_TTL]:,} short and "
            f"{counts[LONG_TTL]:,} long ttls (acknowledged)")


def _command(config: CrashConfig, cycles: int, protocol: str = "http") -> str:
    """The command line that runs ``config`` again for ``cycles`` cycles."""
    default = CrashConfig()
    parts = ["python -m harness crash", f"--seed {config.seed}", f"--cycles {cycles}"]
    if protocol != "http":
        parts.append(f"--protocol {protocol}")
    if config.target.resolve() != REPO:
        parts.append(f"--target {shlex.quote(str(config.target))}")
    if config.server_args != (default.server_args if config.target.resolve() == REPO else ()):
        parts.append(f"--server-args={shlex.quote(' '.join(config.server_args))}")
    for flag, value, usual in [("--clients", config.clients, default.clients),
                               ("--keys", config.keys, default.keys),
                               ("--mode", config.mode.value, default.mode.value),
                               ("--damage-every", config.damage_every, default.damage_every)]:
        if value != usual:
            parts.append(f"{flag} {value}")
    if config.damage != default.damage:
        parts.append("--damage " + (",".join(k.value for k in config.damage) or "none"))
    if config.kill_after != default.kill_after:
        parts.append(f"--kill-after {config.kill_after[0]},{config.kill_after[1]}")
    return " ".join(parts)


_VIOLATION_KINDS = [kind.value for kind in ViolationKind] + [f.value for f in Failure]


async def run_crash(config: CrashConfig, work_dir: Path | None = None,
                    on_cycle: Callable[[int, CrashStats], None] | None = None,
                    keep: bool = False, loop_class: type[CrashLoop] = CrashLoop) -> Report:
    """Run the crash loop (over HTTP, or whatever ``loop_class`` speaks) and build its
    report.

    The working directory (a new temporary one unless given) is removed after a run
    without findings unless ``keep``; after a failure it is kept for inspection.
    """
    bootstrap_target(config.target)
    root = work_dir or Path(tempfile.mkdtemp(prefix="walkv-crash-"))
    started = time.monotonic()
    loop = loop_class(config, root, on_cycle)
    findings = await loop.run()
    kept = bool(findings) or keep or work_dir is not None
    if not kept:
        shutil.rmtree(root, ignore_errors=True)
    return crash_report(config, loop.stats, findings, time.monotonic() - started, root, kept,
                        loop.protocol, loop.keyspace_summary())
