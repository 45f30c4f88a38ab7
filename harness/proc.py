"""Start, stop and crash a real walkv server process from outside.

This mirrors how the public lsfr harness drives a server, so that what passes here
passes there:

- ``<target>/run.sh --port=P --working-dir=D`` runs with cwd = the target directory,
  in a new session, so the server leads its own process group and one ``killpg``
  reaches every process it started (a forked snapshot child included).
- Ready means the first accepted TCP connection to 127.0.0.1:P, polled every 100 ms
  for at most 15 s from process start (the lsfr rule; the server's own code must not
  poll, but a black-box harness has nothing else to wait on). A server that also
  serves the Redis protocol (``--resp-port``) is ready once both ports accept.
- A crash is SIGKILL to the whole group; a clean stop is SIGTERM to the group, up to
  15 s for exit, then SIGKILL.

Output goes to log files in a caller-given directory (never the checkout), one pair
per start, so a test report can show exactly what the failing run printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from harness.errors import ServerStartError

REPO = Path(__file__).resolve().parents[1]
"""This checkout: the default target, and where the harness's own helper processes run."""

READY_TIMEOUT_S = 15.0
"""How long a start may take until the port accepts connections (lsfr's limit)."""

POLL_INTERVAL_S = 0.1
"""Readiness poll period (lsfr's)."""

STOP_TIMEOUT_S = 15.0
"""How long a SIGTERM'd server may take to exit before it is SIGKILL'd."""

# Printed on stderr by a server started with --port=0 once it accepts connections.
LISTENING_RE = re.compile(r"listening on http://(?P<host>\[[^\]]*\]|[^\s:/]+):(?P<port>\d+)")

# The same for the Redis-protocol listener of a server started with --resp-port=0.
RESP_LISTENING_RE = re.compile(
    r"listening on redis://(?P<host>\[[^\]]*\]|[^\s:/]+):(?P<port>\d+)")

# Bind addresses that are reachable through 127.0.0.1.
_LOOPBACK_REACHABLE = frozenset({"127.0.0.1", "0.0.0.0", "localhost"})


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The port is bound and released, as the lsfr harness does; another process may
    take it before the server binds, which is rare enough for tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def bootstrap_target(target: str | os.PathLike[str]) -> None:
    """Run the target's one-off setup (``tools/bootstrap.sh``) now, if it has one.

    ``run.sh`` installs the virtualenv on first use (and again when pyproject.toml
    changed); doing it before the first start keeps that install out of the 15 s
    readiness budget. Raises ServerStartError if the setup fails.
    """
    root = Path(target).resolve()
    if not (root / "tools" / "bootstrap.sh").exists():
        return
    script = '. "$1/tools/bootstrap.sh" && walkv_bootstrap "$1" ""'
    done = subprocess.run(
        ["bash", "-c", script, "bootstrap", str(root)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise ServerStartError(f"bootstrapping {root} failed", done.returncode,
                               root / "tools" / "bootstrap.sh", done.stderr)


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True if a TCP connection to ``host:port`` is accepted right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServerProcess:
    """One walkv server process (restartable) driven like the lsfr harness does.

    Use it as a context manager: leaving the block SIGKILLs the process group
    whatever happened, so a failing test never leaks a server::

        with ServerProcess(repo, "data", log_dir=tmp) as server:
            server.start()
            ...
            server.kill()          # crash
            server.start()         # recover on the same port and directory

    ``port=None`` picks a free port once, so restarts reuse it (as lsfr does);
    ``port=0`` lets the server choose and learns the port from its stderr line
    ``listening on http://HOST:PORT``.

    ``resp_port`` also serves the Redis protocol (``--resp-port``): None (the
    default) leaves it off, 0 lets the server choose and learns the port from
    ``listening on redis://HOST:PORT`` on every start, any other value is used as is.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        working_dir: str | os.PathLike[str],
        *,
        log_dir: str | os.PathLike[str],
        port: int | None = None,
        resp_port: int | None = None,
        host: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        name: str = "server",
    ) -> None:
        self.target = Path(target).resolve()
        self.working_dir = os.fspath(working_dir)
        self.log_dir = Path(log_dir)
        self.requested_port = free_port() if port is None else port
        self.port = self.requested_port
        self.requested_resp_port = resp_port
        self.resp_port = resp_port
        """The RESP port of the current run (None: RESP off; 0: not learnt yet)."""
        self.host = host
        self.extra_args = tuple(extra_args)
        self.env = dict(env) if env is not None else None
        self.ready_timeout = ready_timeout
        self.name = name
        self.ready_seconds: float | None = None
        """Seconds from process start to the first accepted connection, last start."""
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self.stdout_path = self.log_dir / f"{name}.stdout.log"
        self.stderr_path = self.log_dir / f"{name}.stderr.log"

    # -- properties ---------------------------------------------------------------

    @property
    def connect_host(self) -> str:
        """The address clients use: 127.0.0.1 unless bound to something else."""
        if self.host is None or self.host in _LOOPBACK_REACHABLE:
            return "127.0.0.1"
        return self.host

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.connect_host}:{self.port}"

    @property
    def resp_address(self) -> tuple[str, int]:
        """``(host, port)`` of the Redis-protocol listener of the running server.

        Raises RuntimeError if this server was made without ``resp_port``.
        """
        if self.resp_port is None:
            raise RuntimeError(f"{self.name} does not serve RESP (no resp_port given)")
        return self.connect_host, self.resp_port

    @property
    def pid(self) -> int | None:
        """PID of the group leader of the current run (None before the first spawn)."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit status of the current run, None while it runs (negative: signal)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        """True while the group leader of the current run has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The argv a start runs (relative working directories resolve from target)."""
        argv = [str(self.target / "run.sh"), f"--port={self.port}"]
        argv.append(f"--working-dir={self.working_dir}")
        if self.host is not None:
            argv.append(f"--host={self.host}")
        if self.resp_port is not None:
            argv.append(f"--resp-port={self.resp_port}")
        argv.extend(self.extra_args)
        return argv

    # -- starting -------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the process without waiting for readiness (for expected failures)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.port = self.requested_port
        self.resp_port = self.requested_resp_port
        self.ready_seconds = None
        self.stdout_path = self.log_dir / f"{self.name}-{self.starts}.stdout.log"
        self.stderr_path = self.log_dir / f"{self.name}-{self.starts}.stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self._started_at = time.monotonic()
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.target,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env=self.env,
            )

    def wait_ready(self) -> float:
        """Block until the port (and the RESP port, if any) accepts; return seconds since spawn.

        Raises ServerStartError (after killing the group) if the process exits first
        or the deadline ``ready_timeout`` from process start passes.
        """
        proc = self._require_proc()
        deadline = self._started_at + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise self._start_error("server exited before accepting connections")
            if self._learn_ports() and self._ports_accept():
                self.ready_seconds = time.monotonic() - self._started_at
                return self.ready_seconds
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise self._start_error(f"port not accepting after {self.ready_timeout:.0f} s")
            time.sleep(min(POLL_INTERVAL_S, remaining))

    def start(self) -> float:
        """Spawn and wait until ready; return seconds to ready."""
        self.spawn()
        return self.wait_ready()

    def _learn_ports(self) -> bool:
        """Read the ports the server chose (those given as 0) from stderr; True once known."""
        if self.port == 0:
            self.port = _announced_port(LISTENING_RE, self.stderr_text())
        if self.resp_port == 0:
            self.resp_port = _announced_port(RESP_LISTENING_RE, self.stderr_text())
        return self.port != 0 and self.resp_port != 0

    def _ports_accept(self) -> bool:
        ports = [self.port] if self.resp_port is None else [self.port, self.resp_port]
        return all(port_accepts(self.connect_host, port) for port in ports)

    def _start_error(self, reason: str) -> ServerStartError:
        proc = self._require_proc()
        return ServerStartError(reason, proc.poll(), self.stderr_path, self.stderr_text())

    # -- stopping -------------------------------------------------------------------

    def kill(self) -> int | None:
        """SIGKILL the whole process group, reap the leader, return its exit status."""
        if self._proc is None:
            return None
        self._signal_group(signal.SIGKILL)
        return self._proc.wait()

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the group, wait up to ``timeout`` s, then SIGKILL; return the status.

        A status of ``-signal.SIGKILL`` means the server did not stop in time.
        """
        proc = self._require_proc()
        self._signal_group(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            return proc.wait()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the leader to exit; raises subprocess.TimeoutExpired on timeout."""
        return self._require_proc().wait(timeout)

    def close(self) -> None:
        """SIGKILL whatever is left of the group and reap the leader (idempotent).

        Signalling the group after the leader exited is still aimed at our own
        processes: the kernel keeps a PGID allocated while any member lives, so the
        only other target would be a new group leader that reused the PID after a
        full PID wrap-around.
        """
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self._proc.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        proc = self._require_proc()
        # With start_new_session the leader's PID is the group ID.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._proc

    # -- output ---------------------------------------------------------------------

    def stderr_text(self) -> str:
        """Everything the current run wrote to stderr so far."""
        return _read_text(self.stderr_path)

    def stdout_text(self) -> str:
        """Everything the current run wrote to stdout so far."""
        return _read_text(self.stdout_path)

    # -- context manager ------------------------------------------------------------

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _announced_port(pattern: re.Pattern[str], stderr: str) -> int:
    """The port in the first line of ``stderr`` matching ``pattern``, 0 if none yet."""
    match = pattern.search(stderr)
    return 0 if match is None else int(match.group("port"))


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
