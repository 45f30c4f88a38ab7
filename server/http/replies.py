"""Every HTTP answer walkv gives, as tables: the one place outcomes become status codes,
bodies and labels (CONTRACT.md section 2; bodies exactly as written there).

The per-request answers are encoded here once, at import, for both keep-alive modes:
a request picks its `Answers` table by `keep_alive`, and the pipeline picks the answer
by outcome. Nothing on the request path encodes an answer to a store command.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from server.commands import Report
from server.http.codec import Headers, ProtocolError, encode_response
from server.pipeline import Answers
from storage import Op, Outcome

TEXT_PLAIN: Final = b"text/plain; charset=utf-8"
OCTET_STREAM: Final = b"application/octet-stream"
JSON: Final = b"application/json"
PROMETHEUS_TEXT: Final = b"text/plain; version=0.0.4; charset=utf-8"
"""The exposition format ``prometheus_client.generate_latest`` writes."""

OUTCOMES: Final[dict[Outcome, tuple[int, bytes]]] = {
    Outcome.OK: (200, b""),
    Outcome.NOT_FOUND: (404, b"key not found\n"),
    Outcome.NO_SPACE: (507, b"insufficient storage\n"),
    Outcome.FAILED: (503, b"storage unavailable\n"),
    Outcome.CLOSING: (503, b"server is shutting down\n"),
}
"""Status and body of the answer to a store command, by outcome."""

OP_METHODS: Final[dict[Op, str]] = {Op.PUT: "PUT", Op.DELETE: "DELETE", Op.CLEAR: "DELETE"}
"""The method of the request that carries each write (``DELETE /clear`` for CLEAR)."""

REPORT_TYPES: Final[dict[Report, bytes]] = {
    Report.METRICS: PROMETHEUS_TEXT,
    Report.STATS: JSON,
    Report.HEALTH: TEXT_PLAIN,
}
"""Content type of each introspection answer."""

_KNOWN_METHODS: Final = frozenset(
    {b"GET", b"PUT", b"DELETE", b"POST", b"PATCH", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE"})


def method_label(method: bytes) -> str:
    """The ``method`` label: a standard method, ``other``, or ``unknown`` (no request)."""
    if not method:
        return "unknown"
    return method.decode("ascii") if method in _KNOWN_METHODS else "other"


def status_of(outcome: Outcome) -> int:
    """The status code of a store command's answer with ``outcome``."""
    return OUTCOMES[outcome][0]


# -- answers to store commands ---------------------------------------------------------

VALUE_HEADS: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n"
    b"Connection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n",
)
"""Heads of a `200` whose body is a stored value, by keep_alive, formatted with its length."""


def _outcome_answer(outcome: Outcome, keep_alive: bool) -> bytes:
    status, body = OUTCOMES[outcome]
    # A server that is shutting down closes the connection after this answer.
    keep_alive = keep_alive and outcome is not Outcome.CLOSING
    return encode_response(status, body, content_type=TEXT_PLAIN if body else None,
                           keep_alive=keep_alive)


def _store_answers(keep_alive: bool) -> Answers:
    return Answers(tuple(_outcome_answer(o, keep_alive) for o in Outcome),
                   value_head=VALUE_HEADS[keep_alive], close=not keep_alive)


STORE_ANSWERS: Final = (_store_answers(False), _store_answers(True))
"""The answers to GET, PUT, DELETE and clear, indexed by keep_alive (False == 0)."""

# -- answers that need no store ----------------------------------------------------------

TOO_MANY_CONNECTIONS: Final = encode_response(503, b"too many connections\n",
                                              content_type=TEXT_PLAIN, keep_alive=False)


def error_response(error: ProtocolError) -> bytes:
    """The response to a `ProtocolError`; it always closes the connection."""
    return encode_response(error.status, error.body, content_type=TEXT_PLAIN, keep_alive=False)


@dataclass(slots=True, frozen=True)
class Reply:
    """An answer that needs no storage: `status` with `body` and extra `headers`."""

    status: int
    body: bytes
    content_type: bytes | None = TEXT_PLAIN
    headers: Headers = ()

    def encode(self, keep_alive: bool) -> bytes:
        """The whole response; built once per (reply, keep_alive) and then cached."""
        return _encode_reply(self, keep_alive)


@functools.lru_cache(maxsize=64)
def _encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    return encode_response(reply.status, reply.body, content_type=reply.content_type,
                           keep_alive=keep_alive, headers=reply.headers)


KEY_EMPTY: Final = Reply(400, b"key cannot be empty\n")
VALUE_EMPTY: Final = Reply(400, b"value cannot be empty\n")
NOT_FOUND: Final = Reply(404, b"not found\n")
KV_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET, PUT, DELETE"),))
CLEAR_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"DELETE"),))
INTROSPECT_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET"),))
