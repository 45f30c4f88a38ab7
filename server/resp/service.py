"""What every Redis-protocol connection of a server shares: the pipeline's shared parts,
the commands counted by name and outcome, and this front end's part of the reports
(``walkv_resp_*`` metrics, ``resp`` in ``/stats``, and the numbers INFO shows)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from server.introspection import Introspection, Stats, gauge
from server.pipeline import Counters, WriteBatch
from server.state import ServerState


class RespService:
    """Shared by the RESP connections of one server."""

    def __init__(self, state: ServerState, batch: WriteBatch, introspection: Introspection,
                 values: dict[bytes, bytes], port: int = 0) -> None:
        self.state = state
        self.batch = batch
        self.values = values
        """The committed table (read-only here): KEYS, DBSIZE, RANDOMKEY read it."""
        self.counters = Counters()
        self.introspection = introspection
        self.port = port
        self.commands: dict[str, int] = {}
        """Commands received, by lower-case name (``unknown`` for the rest)."""
        self.open: set[Any] = set()  # RespConnection; typed loosely: no import cycle
        """The open RESP connections (``RespConnection``)."""
        self.accepted = 0
        """Connections accepted so far (the last client id given)."""
        self.errors: dict[str, int] = {}
        """Error replies, by command (``protocol``: a malformed stream)."""
        introspection.add(self)

    def next_id(self) -> int:
        """A new connection's client id (CLIENT ID): 1, 2, 3..."""
        self.accepted += 1
        return self.accepted

    def count(self, name: str) -> None:
        self.commands[name] = self.commands.get(name, 0) + 1

    def count_error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    def connections(self) -> int:
        """Open RESP connections."""
        return len(self.open)

    def metrics(self, stats: Stats) -> Iterator[Metric]:
        """``walkv_resp_*``: commands by name and outcome, connections."""
        family = CounterMetricFamily("walkv_resp_commands", "Redis-protocol commands "
                                     "answered, by command and outcome (ok or error)",
                                     labels=["command", "outcome"])
        for name, total in sorted(self.commands.items()):
            errors = self.errors.get(name, 0)
            family.add_metric([name, "ok"], max(total - errors, 0))
            family.add_metric([name, "error"], errors)
        if "protocol" in self.errors:
            family.add_metric(["protocol", "error"], self.errors["protocol"])
        yield family
        yield gauge("walkv_resp_connections_open", "Open Redis-protocol connections",
                    self.connections())

    def server_fields(self, stats: Stats) -> dict[str, Any]:
        """``resp``: commands and error replies by name, open connections."""
        return {"resp": {"commands": dict(sorted(self.commands.items())),
                         "errors": dict(sorted(self.errors.items())),
                         "connections_open": self.connections()}}
