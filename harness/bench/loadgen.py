"""Load clients of the benchmark, each run as its own process: wrk or the built-in one.

Both report the same ``LoadSummary``. Running the client as a child process lets the
benchmark charge it its exact CPU time: ``os.wait4`` returns the child's rusage when
it is reaped (sampling with psutil would miss the last moments of its life). A
client that used close to all of its threads' CPU may have been the bottleneck; the
report shows the figure next to every result.

wrk runs ``harness/bench/wrk/{put_unique,get,mix}.lua``, whose ``done`` hook prints one
``WRK_JSON {...}`` line; wrk counts a reply with status >= 400 as an error, and its
latencies include those replies (the built-in client keeps only 200s' latencies).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BenchError
from harness.load import LoadSummary
from harness.proc import REPO

WRK_DIR = Path(__file__).resolve().parent / "wrk"
WRK_SCRIPTS = {"put": "put_unique.lua", "get": "get.lua", "mix": "mix.lua"}
LOADCLIENT = "harness.bench.loadclient"
"""The built-in client's module, run as its own process (``python -m``)."""
GRACE_S = 120.0
"""How much longer than asked a client may run before it is killed."""


@dataclass(frozen=True)
class LoadSpec:
    """One closed-loop run: ``op`` over ``keys`` preloaded keys (put: new keys)."""

    op: str
    connections: int
    duration_s: float
    keys: int


@dataclass(frozen=True)
class Finished:
    """A client process that exited: its output, exit status and CPU time."""

    stdout: str
    returncode: int
    cpu_s: float
    wall_s: float
    log_path: Path

    @property
    def cores(self) -> float:
        """Average CPU use over the process's life, in cores."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class LoadOutcome:
    """A measured load run."""

    summary: LoadSummary
    client: str
    client_cpu: float
    """The client's CPU use in cores over its whole life (start-up included)."""


class ClientProcess:
    """A started client; ``wait()`` reaps it with ``os.wait4`` for its CPU time."""

    def __init__(self, argv: list[str], log_path: Path, limit_s: float) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._out_path = log_path.with_suffix(".out")
        with open(self._out_path, "wb") as out, open(log_path, "wb") as err:
            self._started = time.monotonic()
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, cwd=REPO)
        # A hung client is killed; the pid stays ours until wait4 below reaps it.
        self._watchdog = threading.Timer(limit_s, self._proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def wait(self) -> Finished:
        """Block until the client exits."""
        _, status, usage = os.wait4(self._proc.pid, 0)
        wall = time.monotonic() - self._started
        self._watchdog.cancel()
        self._proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap
        stdout = self._out_path.read_text(errors="replace")
        self._out_path.unlink(missing_ok=True)
        return Finished(stdout, self._proc.returncode, usage.ru_utime + usage.ru_stime, wall,
                        self.log_path)


class RunningLoad:
    """A measured load run in progress (the checkpoint test acts while it runs)."""

    def __init__(self, client: str, process: ClientProcess) -> None:
        self.client = client
        self._process = process

    def wait(self) -> LoadOutcome:
        """Wait for the run to end and parse its result. Raises BenchError."""
        done = self._process.wait()
        if done.returncode != 0:
            raise BenchError(f"{self.client} exited with status {done.returncode}",
                             done.log_path)
        parse = parse_wrk if self.client == "wrk" else parse_builtin
        return LoadOutcome(parse(done.stdout, done.log_path), self.client, done.cores)


def wrk_available() -> bool:
    """True when ``wrk`` is on PATH."""
    return shutil.which("wrk") is not None


def start_load(client: str, port: int, spec: LoadSpec, log_path: Path) -> RunningLoad:
    """Start ``spec`` against 127.0.0.1:``port`` with ``client`` (wrk or builtin)."""
    argv = wrk_argv(port, spec) if client == "wrk" else builtin_argv(port, spec)
    return RunningLoad(client, ClientProcess(argv, log_path, spec.duration_s + GRACE_S))


def wrk_argv(port: int, spec: LoadSpec) -> list[str]:
    """wrk's command line: one thread per core at most, never more than connections."""
    threads = max(1, min(spec.connections, os.cpu_count() or 1))
    seconds = max(1, round(spec.duration_s))  # wrk takes whole seconds
    return [
        "wrk", f"-t{threads}", f"-c{spec.connections}", f"-d{seconds}s", "--timeout", "15s",
        "-s", str(WRK_DIR / WRK_SCRIPTS[spec.op]), f"http://127.0.0.1:{port}", "--",
        str(spec.keys),
    ]


def builtin_argv(port: int, spec: LoadSpec) -> list[str]:
    """The built-in load client's command line for ``spec``."""
    return loadclient_argv(port, spec.op, "--connections", str(spec.connections),
                           "--duration", str(spec.duration_s), "--keys", str(spec.keys))


def loadclient_argv(port: int, op: str, *flags: str) -> list[str]:
    """``python -m harness.bench.loadclient`` doing ``op`` against 127.0.0.1:``port``."""
    return [sys.executable, "-m", LOADCLIENT, "--port", str(port), "--op", op, *flags]


def parse_builtin(stdout: str, log_path: Path) -> LoadSummary:
    """The built-in client's JSON line."""
    try:
        return LoadSummary(**json.loads(stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError) as exc:
        raise BenchError(f"built-in client printed no result ({exc})", log_path) from None


def parse_wrk(stdout: str, log_path: Path) -> LoadSummary:
    """The ``WRK_JSON`` line of ``harness/bench/wrk/report.lua`` as a LoadSummary."""
    lines = [line for line in stdout.splitlines() if line.startswith("WRK_JSON ")]
    if not lines:
        raise BenchError("wrk printed no WRK_JSON line", log_path)
    data = json.loads(lines[-1].removeprefix("WRK_JSON "))
    kinds = {
        "connect": data["connect_errors"],
        "read": data["read_errors"],
        "write": data["write_errors"],
        "status >= 400": data["status_errors"],
        "timeout": data["timeouts"],
    }
    ok = data["requests"] - data["status_errors"]
    elapsed = data["duration_us"] / 1e6
    return LoadSummary(
        requests=ok,
        elapsed_s=elapsed,
        requests_per_s=ok / elapsed if elapsed > 0 else 0.0,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        p999_ms=data["p999_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
        errors=sum(kinds.values()),
        error_kinds={kind: count for kind, count in kinds.items() if count},
    )


def run_preload(port: int, keys: int, log_path: Path) -> Finished:
    """Write keys ``load-0 .. load-(keys-1)`` (100-byte values), pipelined.

    Raises BenchError if the client failed or any PUT was not answered 200.
    """
    argv = loadclient_argv(port, "preload", "--connections", "32", "--keys", str(keys))
    done = ClientProcess(argv, log_path, GRACE_S + keys / 1000).wait()
    summary = parse_builtin(done.stdout, log_path) if done.returncode == 0 else None
    if summary is None or summary.errors or summary.requests != keys:
        raise BenchError(f"preloading {keys} keys failed", log_path)
    return done


def run_burst(port: int, requests: int, log_path: Path) -> tuple[dict[str, object], Finished]:
    """``requests`` PUTs at once, one new connection each (``harness.burst``)."""
    argv = loadclient_argv(port, "burst", "--keys", str(requests))
    done = ClientProcess(argv, log_path, GRACE_S).wait()
    try:
        result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise BenchError(f"burst printed no result ({exc})", log_path) from None
    return result, done
