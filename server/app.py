"""Server lifecycle as named steps: start (lock, recover, listen), serve, drain, stop.

Startup order matters for the contract: the working directory is locked and fully
recovered *before* the socket listens, so a client that can connect always sees the
recovered state. Shutdown (SIGTERM/SIGINT) stops accepting, lets requests already
received finish (bounded by ``shutdown_timeout``), then closes the engine, which
commits what is queued, writes a snapshot and releases the lock.

This module sits on top: it wires the engine, the shared state, the pipeline's write
batch, introspection and the protocol front ends together, and nothing in the server
imports it (``python -m server`` runs it, see ``server/__main__.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
from collections.abc import Sequence

import uvloop

from server.config import Config
from server.errors import StartupError
from server.http.protocol import HttpConnection
from server.http.service import HttpService
from server.introspection import Introspection, walkv_version
from server.logs import configure_logging, event
from server.pipeline import Slot, WriteBatch, complete_group
from server.state import ServerState
from storage import (
    CorruptionError,
    Engine,
    GroupSink,
    LockHeldError,
    OperationResult,
    Outcome,
    RecoveryMode,
)

log = logging.getLogger("walkv.server")

_FD_RESERVE = 64
"""File descriptors kept free for the WAL, snapshots and the checkpoint child."""


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



def loop_sink(loop: asyncio.AbstractEventLoop) -> GroupSink:
    """The engine's group sink: one hand-off to ``loop`` per commit group, not per write."""
    call_soon = loop.call_soon_threadsafe

    def sink(slots: Sequence[Slot], outcome: Outcome,
             results: Sequence[OperationResult | None] | None) -> None:
        call_soon(complete_group, slots, outcome, results)

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
                stop: asyncio.Event | None = None,
                resp_sock: socket.socket | None = None) -> None:
    """Listen, serve until SIGTERM/SIGINT (or ``stop`` is set), then drain connections.

    ``resp_sock``: also serve the Redis protocol there, over the same engine, state
    and write batch (one group commit for both protocols)."""
    loop = asyncio.get_running_loop()
    fd_limit = raise_fd_limit()
    max_conn = config.max_connections or max(64, fd_limit - _FD_RESERVE)
    state = ServerState(config, engine.keyspace, loop, max_conn)
    batch = WriteBatch(loop, engine.submit_batch)
    introspection = Introspection(state, engine)
    http = HttpService(state, batch, introspection)
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    server = await loop.create_server(lambda: HttpConnection(http), sock=sock,
                                      backlog=config.backlog)
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%d (max %d connections)", host, port, max_conn,
             extra=event("listening"))
    servers = [server]
    if resp_sock is not None:
        # Loaded only when asked for: a server without --resp-port starts without it.
        from server.resp.protocol import RespConnection  # noqa: PLC0415
        from server.resp.service import RespService  # noqa: PLC0415
        resp_host, resp_port = resp_sock.getsockname()[:2]
        resp = RespService(state, batch, introspection, engine.keyspace.values, resp_port)
        servers.append(await loop.create_server(lambda: RespConnection(resp), sock=resp_sock,
                                                backlog=config.backlog))
        log.info("listening on redis://%s:%d (RESP2/RESP3, same keyspace)", resp_host,
                 resp_port, extra=event("listening", protocol="resp"))
    await stop.wait()
    for listener in servers:
        listener.close()
    await drain(state, config.shutdown_timeout)
    # Engine.close commits anything still queued and writes a snapshot; run it off the
    # loop so the loop stays free to deliver the last commit groups' answers.
    await loop.run_in_executor(None, engine.close)


async def drain(state: ServerState, timeout: float) -> None:
    """Take no more requests; wait (at most ``timeout``) for every connection to end."""
    log.info("shutting down: no new connections, finishing %d open ones",
             len(state.connections), extra=event("shutdown"))
    state.shutting_down = True
    for conn in list(state.connections):
        conn.shutdown()
    if state.connections:
        try:
            await asyncio.wait_for(state.all_closed.wait(), timeout)
        except TimeoutError:
            log.warning("shutdown: %d connections still busy after %.0f s; closing them",
                        len(state.connections), timeout)


def run(config: Config, request_path: str) -> int:
    """Start the server with ``config``; returns the process exit status.

    ``request_path`` says how the request path runs (compiled or interpreted), for
    the first log line.
    """
    configure_logging(config.log_level, config.log_format)
    log.info("walkv %s starting (pid %d, working directory %s, request path %s)", walkv_version(),
             os.getpid(), os.path.abspath(config.working_dir), request_path,
             extra=event("start", request_path=request_path))
    if config.unsafe_no_fsync:
        log.warning("UNSAFE: --unsafe-no-fsync is set; acknowledged writes can be lost")
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        engine = open_engine(config, loop)
        report = engine.recovery_report
        log.info("%s", report.line(), extra=event("recovery", recovery=report.to_dict()))
        try:
            sock = bind_socket(config.host, config.port)
            resp_sock = (None if config.resp_port is None
                         else bind_socket(config.host, config.resp_port))
        except StartupError:
            engine.close()
            raise
        loop.run_until_complete(serve(config, engine, sock, resp_sock=resp_sock))
    finally:
        loop.close()
    log.info("stopped cleanly", extra=event("stopped"))
    return 0
