"""The real server code (codec, connection, lifecycle, introspection) serving in this
process over an engine on the fault-injecting in-memory filesystem, for the answers a
real disk cannot be made to give on demand: a full device (507) and a failed fsync
(503 until restart)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from harness.client import request_once
from server.app import bind_socket, loop_sink, serve
from server.config import Config
from storage import Engine, EngineOptions
from storage.testing.memfs import MemFileSystem

ROOT = "/db"
FILL_ALLOCATION = b"x" * (9 << 20)
"""A value whose frame ends past the WAL's preallocation (4 MiB steps): after it, the
segment has no reserved space left, so the next write of any size needs new space."""


@dataclass
class Running:
    """A server serving in this process."""

    fs: MemFileSystem
    engine: Engine
    port: int

    def used(self) -> int:
        """Bytes all files hold now."""
        return sum(len(data) for data in self.fs.files().values())

    def fill_disk(self) -> None:
        """Leave no free space (call after a ``FILL_ALLOCATION`` PUT for a full WAL)."""
        self.fs.space_limit = self.used()


@contextlib.asynccontextmanager
async def inprocess_server(options: EngineOptions | None = None) -> AsyncIterator[Running]:
    """Serve on a free loopback port until the block ends, then shut down cleanly."""
    loop = asyncio.get_running_loop()
    fs = MemFileSystem()
    engine = Engine.open(ROOT, options or EngineOptions(checkpoint_bytes=0), fs=fs,
                         sink=loop_sink(loop))
    sock: socket.socket = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Config(port=port), engine, sock, stop))
    await _until_listening(port)
    try:
        yield Running(fs, engine, port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _until_listening(port: int) -> None:
    # serve() listens once it reaches its first await; the task has not run yet.
    for _ in range(500):
        try:
            await request_once("127.0.0.1", port, "GET", "/healthz", timeout=5)
            return
        except OSError:
            await asyncio.sleep(0.01)
    raise TimeoutError(f"in-process server on port {port} never listened")
