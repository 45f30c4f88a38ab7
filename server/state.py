"""What every connection of a running server shares, whatever protocol it speaks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from server.config import Config
from storage import Keyspace


class Connection(Protocol):
    """A client connection as the server's lifecycle sees it."""

    def shutdown(self) -> None:
        """Stop taking requests: close once every answer owed has been sent."""


class ServerState:
    """Open connections and their limit, the read path, shutdown state."""

    def __init__(self, config: Config, keyspace: Keyspace,
                 loop: asyncio.AbstractEventLoop, max_connections: int) -> None:
        self.config = config
        self.loop = loop
        self.table_get: Callable[[bytes], bytes | None] = keyspace.values.get
        """The committed table's ``get``: the whole read path for keys without a deadline."""
        self.expires: dict[bytes, int] = keyspace.expires
        """Deadlines (ms since the epoch) of the keys that have one (read-only here)."""
        self.now_ms: Callable[[], int] = keyspace.now_ms
        """The clock deadlines are judged by."""
        self.max_connections = max_connections
        self.connections: set[Connection] = set()
        self.connections_rejected = 0
        """Connections closed at once because ``max_connections`` were open."""
        self.shutting_down = False
        self.all_closed = asyncio.Event()
        """Set once shutting down and the last connection is gone."""
        self.started_at = time.monotonic()

    def connection_closed(self, conn: Connection) -> None:
        """Bookkeeping when a connection ends (wakes shutdown once all are gone)."""
        self.connections.discard(conn)
        if self.shutting_down and not self.connections:
            self.all_closed.set()

