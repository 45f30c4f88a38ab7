"""What every HTTP connection of a server shares: the pipeline's shared parts, HTTP's
own counters, the rarer routes, and the answers to ``/metrics``, ``/stats`` and
``/healthz``.

Answers are counted by method and status, the way ``walkv_http_requests_total`` shows
them, without a count per request on the hot path: plain reads and writes are
derived at scrape time from the neutral counters (``server.pipeline.Counters``, and
``Engine.stats()`` for the writes the committer refused) through the tables in
``server/http/replies.py``; the answers made on cold paths (router errors, malformed
requests, introspection, and every answer of the rarer routes) are counted here as
they happen. The records a transaction or the expiry sweep wrote are effects, not
requests, and are not counted as such.

The rarer routes (``router.Extended``) are completed here, in interpreted code:
``keyops`` (preconditions, ``?ttl=``), ``listing`` (``GET /kv``) and ``txn``
(``POST /txn``) parse the request into a plan, and the plan runs through the
connection's pipeline like any request. Every operation is checked against the
engine's limits before it is handed over: the engine refuses a whole batch that
holds an invalid one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from server.commands import Delete, Evaluate, Get, Introspect, Put, Report
from server.http import keyops, listing, txn
from server.http.codec import Request, encode_response
from server.http.replies import (
    OP_METHODS,
    OPERATION_TOO_LARGE,
    REPORT_TYPES,
    STORE_ANSWERS,
    ConditionalAnswers,
    ConditionalRead,
    Evaluation,
    Reply,
    evaluated_answers,
    method_label,
    status_of,
)
from server.http.router import Extended, Route
from server.introspection import Introspection, Stats, counter, gauge
from server.pipeline import Counters, Pipeline, WriteBatch
from server.state import ServerState
from storage import InvalidOperationError, Outcome, Scan, Txn, check_operation


class HttpService:
    """Shared by the HTTP connections of one server (one per listener)."""

    def __init__(self, state: ServerState, batch: WriteBatch,
                 introspection: Introspection) -> None:
        self.state = state
        self.batch = batch
        self.counters = Counters()
        self.replies: dict[tuple[str, int], int] = {}
        """Answers counted as they were made, by (method label, status)."""
        self.judged_reads = [0, 0]
        """GETs with preconditions that found nothing, and that found a value: counted
        in ``replies`` by their real status, so not again from ``counters``."""
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

    def extended(self, conn: Pipeline, ext: Extended, req: Request, keep_alive: bool) -> None:
        """Run a request on a rarer route through ``conn``'s pipeline."""
        plan = self._plan(ext, req)
        if isinstance(plan, Reply):
            self._answer_now(conn, req.method, plan, keep_alive)
        elif not isinstance(plan, Evaluation):
            self._run(conn, plan, keep_alive)
        elif not _valid(plan.operation):
            self._answer_now(conn, req.method, OPERATION_TOO_LARGE, keep_alive)
        else:
            count = functools.partial(self.count, req.method)
            conn.execute(Evaluate(plan.operation),
                         evaluated_answers(plan.render, keep_alive, count))

    def _answer_now(self, conn: Pipeline, method: bytes, reply: Reply,
                    keep_alive: bool) -> None:
        # Not Reply.encode: most of these bodies say what was wrong with this request.
        self.count(method, reply.status)
        conn.answer(reply.encode_once(keep_alive), close=not keep_alive)

    def _run(self, conn: Pipeline, plan: Put | Delete | ConditionalRead,
             keep_alive: bool) -> None:
        if isinstance(plan, ConditionalRead):
            conn.execute(Get(plan.key),
                         ConditionalAnswers(keep_alive, plan.judge, self._count_judged))
        else:  # a plain Put or Delete after all
            conn.execute(plan, STORE_ANSWERS[keep_alive])

    def _plan(self, ext: Extended, req: Request) -> keyops.Plan:
        if ext.route is Route.KEY:
            return keyops.plan(req.method, ext.key, ext.query, req.conditions, req.body,
                               self.state.now_ms())
        if ext.route is Route.LIST:
            return listing.plan(ext.query)
        return txn.plan(req.body, self.state.now_ms())

    def _count_judged(self, status: int, found: bool) -> None:
        self.count(b"GET", status)
        self.judged_reads[found] += 1

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

        missing, found = self.judged_reads
        add("GET", status_of(Outcome.OK), self.counters.reads_found - found)
        add("GET", status_of(Outcome.NOT_FOUND), self.counters.reads_missing - missing)
        # Plain writes only: the requests answered from an evaluated operation were
        # counted in ``replies``, by method, when they were answered.
        for op, method in OP_METHODS.items():
            add(method, status_of(Outcome.OK), self.counters.written[op])
            for outcome, by_op in stats.storage.refused.items():
                add(method, status_of(outcome), by_op.get(op, 0))
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


def _valid(operation: Txn | Scan) -> bool:
    """The engine's own check, made here because it refuses a whole batch that holds an
    invalid operation (the parsers never make one; this keeps a bug to one request)."""
    try:
        check_operation(operation)
    except InvalidOperationError:
        return False
    return True
