"""Server lifecycle as named steps: startup (lock, recover, listen), serve, shutdown.

Startup order matters for the contract: the working directory is locked and fully
recovered *before* the socket listens, so a client that can connect always sees the
recovered state. Shutdown (SIGTERM/SIGINT) stops accepting, lets requests already
received finish (bounded by ``shutdown_timeout``), then closes the engine, which
commits what is queued, writes a snapshot and releases the lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import uvloop

import server
from server.commands import Introspect, Reply
from server.config import Config, parse_args
from server.connection import HttpConnection, Slot, WriteBatch, complete_group
from server.errors import StartupError
from server.http import encode_response
from server.metrics import Introspection, RequestCounters
from server.router import Routed
from storage import CorruptionError, Engine, LockHeldError, Outcome, RecoveryMode

log = logging.getLogger("walkv.server")

_FD_RESERVE = 64
"""File descriptors kept free for the WAL, snapshots and the checkpoint child."""


class ServerState:
    """What every connection shares: the engine's entry points, config and bookkeeping."""

    def __init__(self, config: Config, engine: Engine, loop: asyncio.AbstractEventLoop,
                 max_connections: int) -> None:
        self.config = config
        self.loop = loop
        self.table_get: Callable[[bytes], bytes | None] = engine.table.get
        self.max_connections = max_connections
        self.connections: set[HttpConnection] = set()
        self.shutting_down = False
        self.all_closed = asyncio.Event()
        self.started_at = time.monotonic()
        # Request accounting (server/metrics.py): the hot path only bumps these two.
        self.get_hits = 0
        self.get_misses = 0
        self.counters = RequestCounters()
        self.write_batch = WriteBatch(loop, engine.submit_batch, self.counters)
        self.introspection = Introspection(self, engine)

    def reply(self, method: bytes, cmd: Routed, keep_alive: bool) -> bytes:
        """The whole answer to a request the store is not involved in (counted)."""
        if isinstance(cmd, Introspect):
            status, body, content_type = self.introspection.answer(cmd.endpoint)
            self.counters.count(method, status)
            # Not Reply.encode: its cache is for the fixed replies, these bodies change.
            return encode_response(status, body, content_type=content_type,
                                   keep_alive=keep_alive)
        assert isinstance(cmd, Reply)
        self.counters.count(method, cmd.status)
        return cmd.encode(keep_alive)

    def connection_closed(self, conn: HttpConnection) -> None:
        """Bookkeeping when a connection ends (wakes shutdown once all are gone)."""
        self.connections.discard(conn)
        if self.shutting_down and not self.connections:
            self.all_closed.set()


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard limit; returns the new soft limit.

    Bursts of thousands of simultaneous connections need one descriptor each.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's
    ``fields`` (passed as ``extra={"fields": {...}}``, e.g. the recovery report)."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj.update(fields)
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    """One line per event on stderr: text, or one JSON object per line (``fmt="json"``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s walkv %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def _version() -> str:
    try:
        return metadata.version("walkv")
    except metadata.PackageNotFoundError:
        return "unknown"


def loop_sink(loop: asyncio.AbstractEventLoop) -> Callable[[Sequence[Slot], Outcome], None]:
    """The engine's group sink: one hand-off to ``loop`` per commit group, not per write."""
    call_soon = loop.call_soon_threadsafe

    def sink(slots: Sequence[Slot], outcome: Outcome) -> None:
        call_soon(complete_group, slots, outcome)

    return sink


def open_engine(config: Config, loop: asyncio.AbstractEventLoop) -> Engine:
    """Lock and recover the working directory; commit groups are answered on ``loop``."""
    try:
        return Engine.open(config.working_dir, config.engine_options(), sink=loop_sink(loop))
    except LockHeldError as exc:
        raise StartupError(
            f"working directory {config.working_dir} is in use: {exc.path} is locked by "
            f"another walkv server ({exc.holder})") from None
    except CorruptionError as exc:
        hint = ("" if config.recovery is RecoveryMode.POINT_IN_TIME else
                "; to keep only the valid prefix, restart with --recovery=point-in-time")
        raise StartupError(f"refusing to start: corruption in {exc.path} at byte {exc.offset}: "
                           f"{exc.reason}{hint}") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if os.path.exists(config.working_dir) and not os.path.isdir(config.working_dir):
            reason = "it exists and is not a directory"
        raise StartupError(f"cannot open working directory {config.working_dir}: "
                           f"{reason}") from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket with SO_REUSEADDR (rebindable right after a SIGKILL)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve --host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


async def serve(config: Config, engine: Engine, sock: socket.socket,
                stop: asyncio.Event | None = None) -> None:
    """Listen, serve until SIGTERM/SIGINT (or ``stop`` is set), then drain connections."""
    loop = asyncio.get_running_loop()
    fd_limit = raise_fd_limit()
    max_conn = config.max_connections or max(64, fd_limit - _FD_RESERVE)
    state = ServerState(config, engine, loop, max_conn)
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    server = await loop.create_server(lambda: HttpConnection(state), sock=sock,
                                      backlog=config.backlog)
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%d (max %d connections)", host, port, max_conn,
             extra={"fields": {"event": "listening"}})
    await stop.wait()

    log.info("shutting down: no new connections, finishing %d open ones",
             len(state.connections), extra={"fields": {"event": "shutdown"}})
    server.close()
    state.shutting_down = True
    for conn in list(state.connections):
        conn.shutdown()
    if state.connections:
        try:
            await asyncio.wait_for(state.all_closed.wait(), config.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown: %d connections still busy after %.0f s; closing them",
                        len(state.connections), config.shutdown_timeout)
    # Engine.close commits anything still queued and writes a snapshot; run it off the
    # loop so the loop stays free to deliver the last commit groups' answers.
    await loop.run_in_executor(None, engine.close)


def run(config: Config) -> int:
    """Start the server with ``config``; returns the process exit status."""
    configure_logging(config.log_level, config.log_format)
    log.info("walkv %s starting (pid %d, working directory %s, request path %s)", _version(),
             os.getpid(), os.path.abspath(config.working_dir), server.native,
             extra={"fields": {"event": "start", "request_path": server.native}})
    if config.unsafe_no_fsync:
        log.warning("UNSAFE: --unsafe-no-fsync is set; acknowledged writes can be lost")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        engine = open_engine(config, loop)
        report = engine.recovery_report
        log.info("%s", report.line(),
                 extra={"fields": {"event": "recovery", "recovery": report.to_dict()}})
        try:
            sock = bind_socket(config.host, config.port)
        except StartupError:
            engine.close()
            raise
        loop.run_until_complete(serve(config, engine, sock))
    finally:
        loop.close()
    log.info("stopped cleanly", extra={"fields": {"event": "stopped"}})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: errors become one line on stderr and a non-zero exit."""
    config = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(config)
    except StartupError as exc:
        sys.stderr.write(f"walkv: error: {exc}\n")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line must say what happened
        # A bug, not an operator error: keep the traceback for the report, and still
        # end with one line that names the failure (never a bare traceback).
        traceback.print_exc()
        sys.stderr.write(f"walkv: error: stopped by an unexpected {type(exc).__name__}: "
                         f"{exc} (this is a bug; the traceback is above)\n")
        return 70  # EX_SOFTWARE
