"""The HTTP answer tables: every outcome's exact bytes, in both keep-alive modes, and
the one mapping from outcomes and ops to what /metrics labels them."""

from __future__ import annotations

import pytest

from server.http.replies import (
    OP_METHODS,
    OUTCOMES,
    STORE_ANSWERS,
    method_label,
    status_of,
)
from storage import Op, Outcome

CLOSE = b"Connection: close\r\n"
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n"

EXACT = {
    Outcome.OK: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n%s\r\n",
    Outcome.NOT_FOUND: b"HTTP/1.1 404 Not Found\r\nContent-Length: 14\r\n" + TEXT
    + b"%s\r\nkey not found\n",
    Outcome.NO_SPACE: b"HTTP/1.1 507 Insufficient Storage\r\nContent-Length: 21\r\n" + TEXT
    + b"%s\r\ninsufficient storage\n",
    Outcome.FAILED: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n" + TEXT
    + b"%s\r\nstorage unavailable\n",
}


@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("outcome", list(EXACT))
def test_store_answers_are_exact(outcome: Outcome, keep_alive: bool) -> None:
    expected = EXACT[outcome] % (b"" if keep_alive else CLOSE)
    assert STORE_ANSWERS[keep_alive].by_outcome[outcome] == expected


@pytest.mark.parametrize("keep_alive", [True, False])
def test_shutting_down_closes_the_connection_whatever_the_request_asked(
        keep_alive: bool) -> None:
    assert STORE_ANSWERS[keep_alive].by_outcome[Outcome.CLOSING] == (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 24\r\n" + TEXT + CLOSE
        + b"\r\nserver is shutting down\n")


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_found_value_is_its_head_and_the_value(keep_alive: bool) -> None:
    answers = STORE_ANSWERS[keep_alive]
    assert answers.close is not keep_alive
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: application/octet-stream"
            b"\r\n" + (b"" if keep_alive else CLOSE) + b"\r\n")
    assert answers.found(b"abc") == head + b"abc"


def test_a_large_value_is_not_copied_into_its_head() -> None:
    value = b"v" * (1 << 20)
    head, sent = STORE_ANSWERS[True].found(value)
    assert sent is value
    assert head.endswith(b"Content-Length: 1048576\r\nContent-Type: application/octet-stream"
                         b"\r\n\r\n")


def test_every_outcome_and_op_has_exactly_one_http_meaning() -> None:
    assert set(OUTCOMES) == set(Outcome)
    assert set(OP_METHODS) == set(Op)
    assert [status_of(o) for o in Outcome] == [200, 404, 507, 503, 503]
    assert OP_METHODS == {Op.PUT: "PUT", Op.DELETE: "DELETE", Op.CLEAR: "DELETE"}


@pytest.mark.parametrize(("method", "label"), [
    (b"GET", "GET"), (b"PATCH", "PATCH"), (b"BREW", "other"), (b"", "unknown")])
def test_method_labels(method: bytes, label: str) -> None:
    assert method_label(method) == label
