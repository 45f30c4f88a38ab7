"""Every HTTP answer walkv gives, as tables: the one place outcomes become status codes,
bodies and labels (CONTRACT.md section 2; bodies exactly as written there).

The per-request answers are encoded here once, at import, for both keep-alive modes:
a request picks its `Answers` table by `keep_alive`, and the pipeline picks the answer
by outcome. What depends on the value is formatted into a head encoded in advance:
its length, its `ETag` (RFC 9110 section 8.8.3: a strong validator, the storage's
`etag` of the value in quotes) and, for a key with a deadline, `Walkv-TTL` (seconds
left, three decimals).

The answers to the rarer requests (preconditions on a read, and operations the
committer evaluates: conditional writes, listings, transactions) are built per request
from the same tables: `ConditionalAnswers` and `evaluated_answers`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from server.commands import Report
from server.http.codec import Headers, ProtocolError, encode_response
from server.pipeline import Answer, Answers
from storage import Op, OperationResult, Outcome, Scan, Txn, etag

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
"""The method of the request that carries each plain write (``DELETE /clear`` for CLEAR).
Requests answered from an evaluated operation (``Op.EVALUATE``) are counted by method
and status as they are answered (``server/http/service.py``)."""

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


def entity_tag(value: bytes) -> bytes:
    """The opaque-tag of ``value``'s ETag (sent in quotes): the storage's ``etag``."""
    return etag(value).encode("ascii")


def _head(first: bytes, keep_alive: bool, fields: bytes) -> bytes:
    return first + (b"" if keep_alive else b"Connection: close\r\n") + fields + b"\r\n"


_VALUE_FIRST: Final = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                       b"Content-Type: application/octet-stream\r\n")
_TAG_FIELD: Final = b'ETag: "%s"\r\n'
_TTL_FIELD: Final = b"Walkv-TTL: %d.%03d\r\n"

VALUE_HEADS: Final = tuple(_head(_VALUE_FIRST, k, _TAG_FIELD) for k in (False, True))
"""Heads of a `200` whose body is a stored value, by keep_alive, formatted with its
length and entity tag."""
EXPIRING_HEADS: Final = tuple(_head(_VALUE_FIRST, k, _TAG_FIELD + _TTL_FIELD)
                              for k in (False, True))
"""`VALUE_HEADS` of a key with a deadline: also formatted with the seconds and
milliseconds left."""
STORED_ANSWERS: Final = tuple(_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", k, _TAG_FIELD)
                              for k in (False, True))
"""The `200` to a PUT, by keep_alive, formatted with the entity tag of the value stored."""
NOT_MODIFIED_HEADS: Final = (
    tuple(_head(b"HTTP/1.1 304 Not Modified\r\n", k, _TAG_FIELD) for k in (False, True)),
    tuple(_head(b"HTTP/1.1 304 Not Modified\r\n", k, _TAG_FIELD + _TTL_FIELD)
          for k in (False, True)),
)
"""The `304` to a GET whose If-None-Match matched, by (has a deadline, keep_alive): no
body, so no Content-Length (RFC 9110 section 8.6), the fields a `200` would carry."""


def _outcome_answer(outcome: Outcome, keep_alive: bool) -> bytes:
    status, body = OUTCOMES[outcome]
    # A server that is shutting down closes the connection after this answer.
    keep_alive = keep_alive and outcome is not Outcome.CLOSING
    return encode_response(status, body, content_type=TEXT_PLAIN if body else None,
                           keep_alive=keep_alive)


OUTCOME_ANSWERS: Final = tuple(tuple(_outcome_answer(o, k) for o in Outcome)
                               for k in (False, True))
"""The whole answer to a store command by outcome, indexed by keep_alive."""


class HttpAnswers(Answers):
    """HTTP's answers to GET, PUT, DELETE and clear: a found or stored value's answer
    carries its ETag (and Walkv-TTL when the key has a deadline)."""

    def __init__(self, keep_alive: bool) -> None:
        super().__init__(OUTCOME_ANSWERS[keep_alive], value_head=VALUE_HEADS[keep_alive],
                         close=not keep_alive)
        self.keep_alive = keep_alive

    def found(self, value: bytes) -> Answer:
        return self.framed(self.value_head % (len(value), entity_tag(value)), value)

    def found_expiring(self, value: bytes, ms_left: int) -> Answer:
        return self.tagged(value, entity_tag(value), ms_left)

    def stored(self, value: bytes) -> Answer:
        return STORED_ANSWERS[self.keep_alive] % entity_tag(value)

    def tagged(self, value: bytes, tag: bytes, ms_left: int) -> Answer:
        """The `200` with ``value`` whose entity tag is ``tag`` (``ms_left`` < 0: the key
        has no deadline)."""
        if ms_left < 0:
            return self.framed(self.value_head % (len(value), tag), value)
        head = EXPIRING_HEADS[self.keep_alive] % (len(value), tag, *divmod(ms_left, 1000))
        return self.framed(head, value)


STORE_ANSWERS: Final = (HttpAnswers(False), HttpAnswers(True))
"""The answers to GET, PUT, DELETE and clear, indexed by keep_alive (False == 0)."""

PROCEED: Final = 0
"""A `Judge`'s verdict when the preconditions hold: answer as without them."""
Judge: TypeAlias = Callable[[bytes | None], int]
"""Judges a GET's preconditions given the entity tag of the value read (None: no
value): ``PROCEED``, 304 or 412."""


class ConditionalAnswers(HttpAnswers):
    """The answers to a GET with If-Match or If-None-Match (RFC 9110 section 13.2.2):
    ``judge`` decides on the value read, and ``count(status, found)`` hears of each
    answer so the service can count it by its real status."""

    def __init__(self, keep_alive: bool, judge: Judge,
                 count: Callable[[int, bool], None]) -> None:
        super().__init__(keep_alive)
        self.judge = judge
        self.count = count

    def found(self, value: bytes) -> Answer:
        return self._judged(value, -1)

    def found_expiring(self, value: bytes, ms_left: int) -> Answer:
        return self._judged(value, ms_left)

    def missing(self) -> Answer:
        status = self.judge(None)
        self.count(404 if status == PROCEED else status, False)
        if status == PROCEED:
            return self.by_outcome[int(Outcome.NOT_FOUND)]
        return PRECONDITION_FAILED.encode(self.keep_alive)

    def _judged(self, value: bytes, ms_left: int) -> Answer:
        tag = entity_tag(value)
        status = self.judge(tag)
        self.count(200 if status == PROCEED else status, True)
        if status == PROCEED:
            return self.tagged(value, tag, ms_left)
        if status != 304:
            return PRECONDITION_FAILED.encode(self.keep_alive)
        if ms_left < 0:
            return NOT_MODIFIED_HEADS[0][self.keep_alive] % tag
        return NOT_MODIFIED_HEADS[1][self.keep_alive] % (tag, *divmod(ms_left, 1000))


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


    def encode_once(self, keep_alive: bool) -> bytes:
        """The whole response, not cached: for replies made for one request."""
        return encode_response(self.status, self.body, content_type=self.content_type,
                               keep_alive=keep_alive, headers=self.headers)


@functools.lru_cache(maxsize=64)
def _encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    return reply.encode_once(keep_alive)


# -- answers to evaluated operations -----------------------------------------------------


@dataclass(slots=True, frozen=True)
class Evaluation:
    """A request the committer evaluates: its operation, and the reply to its result."""

    operation: Txn | Scan
    render: Callable[[OperationResult], Reply]


@dataclass(slots=True, frozen=True)
class ConditionalRead:
    """A GET with preconditions: the key, and the judge of the value read."""

    key: bytes
    judge: Judge


def evaluated_answers(render: Callable[[OperationResult], Reply], keep_alive: bool,
                      count: Callable[[int], None]) -> Answers:
    """The answers to an `Evaluation`: ``render`` once committed, the store command's
    answer by outcome otherwise; ``count(status)`` hears of the answer made."""
    by_outcome = OUTCOME_ANSWERS[keep_alive]

    def answer(outcome: Outcome, result: OperationResult | None) -> Answer:
        if result is None:
            count(status_of(outcome))
            return by_outcome[int(outcome)]
        reply = render(result)
        count(reply.status)
        return reply.encode_once(keep_alive)

    return Answers(by_outcome, value_head=b"", close=not keep_alive, render=answer)


KEY_EMPTY: Final = Reply(400, b"key cannot be empty\n")
PRECONDITION_FAILED: Final = Reply(412, b"precondition failed\n")
OPERATION_TOO_LARGE: Final = Reply(413, b"operation beyond the engine's limits\n")
VALUE_EMPTY: Final = Reply(400, b"value cannot be empty\n")
NOT_FOUND: Final = Reply(404, b"not found\n")
KV_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET, PUT, DELETE"),))
CLEAR_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"DELETE"),))
INTROSPECT_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET"),))
LIST_METHOD_NOT_ALLOWED: Final = INTROSPECT_METHOD_NOT_ALLOWED
TXN_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"POST"),))
