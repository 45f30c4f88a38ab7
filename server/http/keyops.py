"""`/kv/{key}` with preconditions or a time to live: what the router hands over as
``Route.KEY``.

- ``GET`` with If-Match or If-None-Match: a read like any other, judged on the value
  it finds (``server/http/preconditions.py``): 412, 304, or the usual answer.
- ``PUT ?ttl=<seconds>``: stored with a deadline ``now + ttl``; without ``ttl`` a PUT
  stores without one, so a plain PUT also clears a deadline the key had.
- ``PUT``/``DELETE`` with If-Match or If-None-Match: a transaction of one step under
  the precondition's ``Compare``, evaluated in commit order, so that of two
  concurrent ``If-None-Match: *`` PUTs exactly one creates the key: ``200`` (a PUT's
  with the ETag of the value stored) or ``412 precondition failed``, nothing applied.

Malformed input is a 400 saying what: ``invalid ttl``, ``invalid If-Match``.
"""

from __future__ import annotations

from typing import Final

from server.commands import Delete, Put
from server.http.codec import Conditions
from server.http.preconditions import NEVER, PreconditionError, Preconditions
from server.http.query import QueryError, parameters, ttl_ms_of_text
from server.http.replies import (
    PRECONDITION_FAILED,
    TEXT_PLAIN,
    ConditionalRead,
    Evaluation,
    Reply,
    entity_tag,
)
from storage import Compare, OperationResult, Remove, Step, Store, Txn, TxnResult

_PARAMETERS: Final = frozenset({b"ttl"})
_DELETED: Final = Reply(200, b"", None)

Plan = Reply | Put | Delete | ConditionalRead | Evaluation
"""What a request on this route becomes: a reply now, a plain write, a judged read, or
a transaction."""


def plan(method: bytes, key: bytes, query: bytes, conditions: Conditions | None,
         body: bytes, now_ms: int) -> Plan:
    """What ``method`` on ``/kv/{key}?{query}`` asks for (GET, PUT or DELETE, a key and,
    for a PUT, a value already checked by the router)."""
    try:
        pre = None if conditions is None else Preconditions.of(conditions)
        if method == b"GET":
            assert pre is not None  # a GET comes here only with preconditions
            return ConditionalRead(key, pre.judge_read)
        deadline = _deadline(query, now_ms) if method == b"PUT" else None
        condition = None if pre is None else pre.for_write(key)
    except (QueryError, PreconditionError) as exc:
        return Reply(400, f"{exc}\n".encode(), TEXT_PLAIN)
    if condition is NEVER:
        return PRECONDITION_FAILED
    compare = None if condition is None else condition.compare
    negated = condition is not None and condition.negated
    if method == b"PUT":
        if compare is None and deadline is None:
            return Put(key, body)
        return _write(Store(key, body, deadline), compare, negated, entity_tag(body))
    if compare is None:
        return Delete(key)
    return _write(Remove(key), compare, negated, None)


def _deadline(query: bytes, now_ms: int) -> int | None:
    try:
        ttl = parameters(query, _PARAMETERS).get(b"ttl")
    except QueryError:  # given twice: whichever it is, a bad ttl
        raise QueryError("invalid ttl") from None
    return None if ttl is None else now_ms + ttl_ms_of_text(ttl)


def _write(step: Step, compare: Compare | None, negated: bool, tag: bytes | None) -> Evaluation:
    """``step`` if ``compare`` holds (``negated``: if it does not; None: always)."""
    if compare is None:
        txn = Txn((), (step,))
    elif negated:
        txn = Txn((compare,), (), (step,))
    else:
        txn = Txn((compare,), (step,))
    applied = _DELETED if tag is None else Reply(200, b"", None, ((b"ETag", b'"%s"' % tag),))

    def render(result: OperationResult) -> Reply:
        assert isinstance(result, TxnResult)
        return applied if result.succeeded != negated else PRECONDITION_FAILED

    return Evaluation(txn, render)
