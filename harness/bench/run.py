"""Run one benchmark measurement against one target, on a fresh working directory.

Every measurement starts its own server (``harness.proc.ServerProcess``, the lsfr
way) on a new directory under the run's work directory and SIGKILLs it afterwards,
so no measurement sees another's data, log or checkpoint, and the counters a target
serves at ``GET /stats`` cover only the measured run. What is measured:

- throughput: PUT (new keys), GET, or a 50/50 mix over preloaded keys, closed loop;
- burst: many PUTs at once, each on its own new connection;
- large: load 1,000,000 keys, then RSS, listing latency (``probe.measure_listing``),
  restart after SIGKILL, checkpoint stall.

Restart time is from spawning ``run.sh`` to the first 200 for a GET of a key written
before the kill (not just an accepted connection): what a client waits for.

Checkpoint stall, made reproducible from outside: the loaded server is stopped
cleanly (so it snapshots) and started again with ``--checkpoint-bytes=1M``. Two
equal windows of GET load at 16 connections follow; in each, one PUT of a 640 KiB
value is sent a fraction into the window. The first PUT leaves the log under 1 MiB,
the second crosses it, so only the second window holds a checkpoint of every key,
and the windows differ in nothing else. The checkpoint is seen as the server's child
process (walkv forks one), and in ``/stats`` when served.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.loadgen import LoadOutcome, LoadSpec, run_burst, run_preload, start_load
from harness.bench.model import (
    BurstRun,
    CheckpointRun,
    GroupStats,
    LargeRun,
    Sizes,
    Target,
    ThroughputRun,
)
from harness.bench.probe import (
    ChildWatcher,
    fetch_stats,
    first_reply,
    get_ok,
    group_stats,
    json_float,
    json_int,
    measure_listing,
    process_cpu_s,
    put_value,
    rss_bytes,
    wait_children_gone,
)
from harness.errors import ServerStartError
from harness.load import key_name
from harness.proc import ServerProcess

CHECKPOINT_BYTES = 1 << 20
"""``--checkpoint-bytes`` for the checkpoint-stall windows."""
TRIGGER_VALUE_BYTES = 640 << 10
"""One such PUT stays under CHECKPOINT_BYTES of log; the second crosses it."""
CRASH_PAUSE_S = 1.0
"""SIGKILL to restart pause (the lsfr rule); also lets the killed group release LOCK."""
READY_LIMIT_S = 15.0
LARGE_PARTS = frozenset({"memory", "list", "restart", "checkpoint"})


@dataclass(frozen=True)
class RunContext:
    """Where a benchmark run keeps data and logs, and how it generates load."""

    work_dir: Path
    log_dir: Path
    client: str
    sizes: Sizes
    keep_data: bool = False


class Runner:
    """Measurements against any target; each method returns one round's record."""

    def __init__(self, context: RunContext) -> None:
        self.ctx = context

    # -- throughput ----------------------------------------------------------------

    def throughput(self, target: Target, op: str, connections: int, rnd: int) -> ThroughputRun:
        """Closed-loop ``op`` at ``connections`` connections on a fresh server."""
        label = f"{target.name}-{op}-c{connections}-r{rnd}"
        keys = self.ctx.sizes.get_keys
        with self._server(target, label) as server:
            if op != "put":
                run_preload(server.port, keys, self._log(label, "preload"))
                if op == "mix" and fetch_stats(server.port) is not None:
                    # Restart so that max_group covers the measured writes only.
                    server.terminate()
                    server.start()
            spec = LoadSpec(op, connections, self.ctx.sizes.duration_s, keys)
            outcome, server_cpu, groups = self._measure(server, spec, label)
        summary = outcome.summary
        return ThroughputRun(
            target=target.name, round=rnd, op=op, connections=connections,
            client=outcome.client, summary=summary, client_cpu=outcome.client_cpu,
            server_cpu=server_cpu, groups=groups,
        )

    def _measure(
        self, server: ServerProcess, spec: LoadSpec, label: str
    ) -> tuple[LoadOutcome, float, GroupStats | None]:
        """Run the load; also the server's CPU use (cores) and group-commit stats."""
        before = fetch_stats(server.port)
        cpu_before = process_cpu_s(server)
        outcome = start_load(self.ctx.client, server.port, spec, self._log(label, "load")).wait()
        server_cpu = (process_cpu_s(server) - cpu_before) / max(outcome.summary.elapsed_s, 1e-9)
        after = fetch_stats(server.port)
        return outcome, server_cpu, group_stats(before, after, outcome.summary.elapsed_s)

    # -- burst -----------------------------------------------------------------------

    def burst(self, target: Target, rnd: int) -> BurstRun:
        """``burst_requests`` PUTs at once, each on its own new connection."""
        label = f"{target.name}-burst-r{rnd}"
        with self._server(target, label) as server:
            requests = self.ctx.sizes.burst_requests
            result, done = run_burst(server.port, requests, self._log(label, "burst"))
        failures = result.get("failures")
        return BurstRun(
            target=target.name, round=rnd, requests=requests, ok=json_int(result.get("ok")),
            elapsed_s=json_float(result.get("elapsed_s")),
            failures=dict(failures) if isinstance(failures, dict) else {},
            client_cpu=done.cores,
        )

    # -- 1,000,000 keys ------------------------------------------------------------------

    def large(self, target: Target, rnd: int, parts: frozenset[str]) -> LargeRun:
        """Load ``large_keys`` keys, then the ``parts`` asked for (see LARGE_PARTS)."""
        label = f"{target.name}-large-r{rnd}"
        keys = self.ctx.sizes.large_keys
        with self._server(target, label) as server:
            loaded = run_preload(server.port, keys, self._log(label, "preload"))
            wait_children_gone(server, 300.0)  # a checkpoint the load started
            # RSS as loaded: before a first listing makes the server build its key order.
            rss = rss_bytes(server) if "memory" in parts else None
            listing = measure_listing(server.port, keys) if "list" in parts else None
            restarts: list[float] = []
            note = ""
            if "restart" in parts:
                restarts, note = self._restarts(server, keys)
            checkpoint, checkpoint_note = None, ""
            if "checkpoint" in parts:
                checkpoint, checkpoint_note = self._checkpoint(target, server, label)
        return LargeRun(
            target=target.name, round=rnd, keys=keys, load_s=loaded.wall_s, rss_bytes=rss,
            restart_s=restarts, restart_note=note, checkpoint=checkpoint,
            checkpoint_note=checkpoint_note, listing=listing,
        )

    def _restarts(self, server: ServerProcess, keys: int) -> tuple[list[float], str]:
        """SIGKILL + restart ``restarts`` times; seconds from spawn to a good GET."""
        path = "/kv/" + key_name(keys - 1).decode()
        times: list[float] = []
        for _ in range(self.ctx.sizes.restarts):
            server.kill()
            time.sleep(CRASH_PAUSE_S)
            started = time.monotonic()
            server.spawn()
            reply = first_reply(server, path, started + READY_LIMIT_S)
            if reply is None:
                return times, f"no reply within {READY_LIMIT_S:.0f} s of a restart"
            status, at = reply
            if status != 200:
                return times, f"a key written before SIGKILL got {status} after restart"
            times.append(at - started)
        return times, ""

    def _checkpoint(
        self, target: Target, server: ServerProcess, label: str
    ) -> tuple[CheckpointRun | None, str]:
        """Two GET windows, the second with a checkpoint; see the module docstring."""
        keys = self.ctx.sizes.large_keys
        if not get_ok(server.port, "/kv/" + key_name(keys - 1).decode()):
            return None, "n/a: the loaded keys are gone after a restart (no durability)"
        server.terminate()
        args = (*target.extra_args, f"--checkpoint-bytes={CHECKPOINT_BYTES}")
        with ServerProcess(target.directory, server.working_dir, log_dir=self.ctx.log_dir,
                           extra_args=args, name=f"{label}-checkpoint") as again:
            try:
                again.start()
            except ServerStartError:
                return None, "n/a: the target does not start with --checkpoint-bytes"
            without = self._window(again, label, "a")
            during = self._window(again, label, "b")
        return _checkpoint_run(keys, without, during), ""

    def _window(self, server: ServerProcess, label: str, tag: str) -> _Window:
        """GET load at 16 connections with one large PUT a fraction of the way in."""
        window_s = self.ctx.sizes.checkpoint_window_s
        spec = LoadSpec("get", 16, window_s, self.ctx.sizes.large_keys)
        before = fetch_stats(server.port)
        with ChildWatcher(server) as children:
            load = start_load(self.ctx.client, server.port, spec,
                              self._log(label, f"checkpoint-{tag}"))
            # Client start-up, then some undisturbed load; the rest of the window is
            # for the checkpoint (a few seconds for 1,000,000 keys on a busy machine).
            time.sleep(0.5 + min(1.0, window_s / 4))
            put_status = put_value(server.port, f"/kv/bench-checkpoint-{tag}",
                                   TRIGGER_VALUE_BYTES)
            outcome = load.wait()
            ended = time.monotonic()
            wait_children_gone(server, 300.0)
        return _Window(outcome, put_status, children.first_seen, children.last_seen, ended,
                       before, fetch_stats(server.port))

    # -- helpers -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _server(self, target: Target, label: str) -> Iterator[ServerProcess]:
        """A started server on a new directory; SIGKILLed and its data removed after."""
        data = self.ctx.work_dir / label
        try:
            with ServerProcess(target.directory, data, log_dir=self.ctx.log_dir,
                               extra_args=target.extra_args, name=label) as server:
                server.start()
                yield server
        finally:
            if not self.ctx.keep_data:
                shutil.rmtree(data, ignore_errors=True)

    def _log(self, label: str, step: str) -> Path:
        return self.ctx.log_dir / f"{label}.{step}.log"


@dataclass(frozen=True)
class _Window:
    """One checkpoint-stall window: the load's result and what was seen meanwhile."""

    outcome: LoadOutcome
    put_status: int | None
    child_first: float | None
    child_last: float | None
    load_ended: float
    stats_before: dict[str, Any] | None
    stats_after: dict[str, Any] | None

    @property
    def checkpoints(self) -> int | None:
        """Checkpoints ``/stats`` says completed during the window (None: not served)."""
        if self.stats_before is None or self.stats_after is None:
            return None
        done = "checkpoints_completed"
        return json_int(self.stats_after.get(done)) - json_int(self.stats_before.get(done))


def _checkpoint_run(keys: int, without: _Window, during: _Window) -> CheckpointRun:
    """Compare the two windows; what looks wrong goes into the record's note."""
    notes = []
    if without.child_first is not None or (without.checkpoints or 0) > 0:
        notes.append("a checkpoint also ran in the window meant to have none")
    seen = during.child_first is not None or (during.checkpoints or 0) > 0
    if not seen:
        notes.append("no checkpoint was observed (no child process, no /stats)")
    if 200 not in (without.put_status, during.put_status):
        notes.append(f"trigger PUTs answered {without.put_status}, {during.put_status}")
    seconds = None
    if during.child_first is not None and during.child_last is not None:
        seconds = during.child_last - during.child_first
        if during.child_last > during.load_ended:
            notes.append(f"the checkpoint outlasted the window by "
                         f"{during.child_last - during.load_ended:.2f} s")
    pause = None
    if during.stats_after is not None and seen:
        pause = float(during.stats_after.get("checkpoint_last_start_pause_seconds") or 0) * 1e3
    a, b = without.outcome.summary, during.outcome.summary
    return CheckpointRun(
        keys=keys, p99_without_ms=a.p99_ms, p99_with_ms=b.p99_ms, p999_without_ms=a.p999_ms,
        p999_with_ms=b.p999_ms, max_without_ms=a.max_ms, max_with_ms=b.max_ms,
        rps_without=a.requests_per_s, rps_with=b.requests_per_s, checkpoint_seconds=seconds,
        pause_ms=pause, note="; ".join(notes),
    )
