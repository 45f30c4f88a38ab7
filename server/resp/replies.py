"""RESP answers to the pipeline's outcomes, encoded once (``server.pipeline.Answers``).

A write the engine could not apply gets an error reply that says why; a server that is
shutting down answers its last write with an error and closes the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from server.pipeline import Answer, Answers
from server.resp.codec import NULL3, NULL_BULK, OK, error
from storage import OperationResult, Outcome

OUTCOME_ERRORS: Final = {
    Outcome.NO_SPACE: error("ERR no space left on device: the write was not applied "
                            "(writes are accepted again once space is freed)"),
    Outcome.FAILED: error("ERR the write-ahead log failed: writes are refused until the "
                          "server restarts (reads still work)"),
    Outcome.CLOSING: error("ERR server is shutting down"),
}
"""The reply to a write whose outcome is not OK."""


def _table(ok: bytes, missing: bytes) -> tuple[bytes, ...]:
    by = {Outcome.OK: ok, Outcome.NOT_FOUND: missing, **OUTCOME_ERRORS}
    return tuple(by[o] for o in Outcome)


STORE_ANSWERS: Final = tuple(Answers(_table(OK, NULL3 if resp3 else NULL_BULK),
                                     value_head=b"$%d\r\n", value_tail=b"\r\n")
                             for resp3 in (False, True))
"""GET, plain SET and FLUSHALL's answers, indexed by RESP3 (False == 0)."""

def evaluated(render: Callable[[OperationResult], bytes],
              count_error: Callable[[], None]) -> Answers:
    """Answers to an ``Evaluate``: ``render(result)`` when applied, else the outcome's
    error (``count_error()`` hears of every error reply)."""
    def answer(outcome: Outcome, result: OperationResult | None) -> Answer:
        if outcome is Outcome.OK and result is not None:
            data = render(result)
            if data[:1] == b"-":
                count_error()
            return data
        count_error()
        return OUTCOME_ERRORS.get(outcome, OUTCOME_ERRORS[Outcome.FAILED])
    return Answers(STORE_ANSWERS[0].by_outcome, value_head=b"$%d\r\n", value_tail=b"\r\n",
                   render=answer)
