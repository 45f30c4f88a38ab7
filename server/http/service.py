"""What every HTTP connection of a server shares: the pipeline's shared parts, HTTP's
own counters, and the answers to ``/metrics``, ``/stats`` and ``/healthz``.

Answers are counted by method and status, the way ``walkv_http_requests_total`` shows
them, without a count per request on the hot path: reads and committed writes are
derived at scrape time from the neutral counters (``server.state.Counters``,
``Engine.stats()``) through the tables in ``server/http/replies.py``; only the
answers made on cold paths (router errors, malformed requests, introspection) are
counted here as they happen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from server.commands import Introspect, Report
from server.http.codec import encode_response
from server.http.replies import (
    OP_METHODS,
    REPORT_TYPES,
    Reply,
    method_label,
    status_of,
)
from server.introspection import Introspection, Stats, counter, gauge
from server.pipeline import WriteBatch
from server.state import Counters, ServerState
from storage import Op, Outcome


class HttpService:
    """Shared by the HTTP connections of one server (one per listener)."""

    def __init__(self, state: ServerState, batch: WriteBatch,
                 introspection: Introspection) -> None:
        self.state = state
        self.batch = batch
        self.counters = Counters()
        self.replies: dict[tuple[str, int], int] = {}
        """Answers counted as they were made, by (method label, status)."""
        self._introspection = introspection
        introspection.add(self)

    def count(self, method: bytes, status: int) -> None:
        """One answer with ``status`` to a request with ``method`` (b"": unparsable)."""
        key = (method_label(method), status)
        self.replies[key] = self.replies.get(key, 0) + 1

    def reply(self, method: bytes, routed: Reply | Introspect, keep_alive: bool) -> bytes:
        """The whole answer to a request the store is not involved in (counted)."""
        if isinstance(routed, Introspect):
            status, body = self._report(routed.report)
            self.count(method, status)
            # Not Reply.encode: its cache is for the fixed replies, these bodies change.
            return encode_response(status, body, content_type=REPORT_TYPES[routed.report],
                                   keep_alive=keep_alive)
        self.count(method, routed.status)
        return routed.encode(keep_alive)

    def _report(self, report: Report) -> tuple[int, bytes]:
        intro = self._introspection
        if report is Report.METRICS:
            return 200, intro.metrics()
        if report is Report.STATS:
            return 200, json.dumps(intro.stats_document(), indent=1).encode() + b"\n"
        reason = intro.unhealthy_reason()
        return (503, f"{reason}\n".encode()) if reason else (200, b"ok\n")

    # -- FrontEndReport ------------------------------------------------------------------
    def requests(self, stats: Stats) -> dict[tuple[str, int], int]:
        """Every answer so far by (method label, status)."""
        counts = dict(self.replies)

        def add(method: str, status: int, n: int) -> None:
            if n:
                counts[(method, status)] = counts.get((method, status), 0) + n

        add("GET", status_of(Outcome.OK), self.counters.reads_found)
        add("GET", status_of(Outcome.NOT_FOUND), self.counters.reads_missing)
        # Writes answered by the committer are counted there, by op; an op no single
        # method carries (an EXPIRE, a transaction's effects) is not a request, and
        # the expiry sweep's deletes are nobody's.
        committed = dict(stats.storage.committed)
        committed[Op.DELETE] = committed.get(Op.DELETE, 0) - stats.storage.reaped
        for op, n in committed.items():
            if op in OP_METHODS:
                add(OP_METHODS[op], status_of(Outcome.OK), n)
        for outcome, by_op in stats.storage.refused.items():
            for op, n in by_op.items():
                if op in OP_METHODS:
                    add(OP_METHODS[op], status_of(outcome), n)
        for (op, outcome), n in self.counters.refused.items():
            if op in OP_METHODS:
                add(OP_METHODS[op], status_of(outcome), n)
        return counts

    def metrics(self, stats: Stats) -> Iterator[Metric]:
        """``walkv_http_*``: answers by method and status, connections."""
        requests = CounterMetricFamily("walkv_http_requests", "HTTP requests answered, by "
                                       "method and status", labels=["method", "status"])
        for (method, status), n in sorted(self.requests(stats).items()):
            requests.add_metric([method, str(status)], n)
        yield requests
        server = stats.server
        yield gauge("walkv_http_connections_open", "Open client connections",
                    server.connections_open)
        yield gauge("walkv_http_connections_max", "Open connections allowed at once",
                    server.connections_max)
        yield counter("walkv_http_connections_rejected", "Connections refused with 503 at "
                      "the connection limit", server.connections_rejected)

    def server_fields(self, stats: Stats) -> dict[str, Any]:
        """``requests``: every answer so far, by method and status."""
        return {"requests": [{"method": m, "status": s, "count": n}
                             for (m, s), n in sorted(self.requests(stats).items())]}
