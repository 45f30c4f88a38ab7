"""The HTTP answer tables: every outcome's exact bytes, in both keep-alive modes, the
answers that carry an ETag and a TTL, the answers to judged reads and evaluated
operations, and the one mapping from outcomes and ops to what /metrics labels them."""

from __future__ import annotations

import pytest

from server.http.replies import (
    OP_METHODS,
    OUTCOMES,
    PROCEED,
    STORE_ANSWERS,
    ConditionalAnswers,
    Reply,
    entity_tag,
    evaluated_answers,
    method_label,
    status_of,
)
from storage import Op, OperationResult, Outcome, Page, etag

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


ABC_TAG = etag(b"abc").encode()


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_found_value_is_its_head_with_its_etag_and_the_value(keep_alive: bool) -> None:
    answers = STORE_ANSWERS[keep_alive]
    assert answers.close is not keep_alive
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: application/octet-stream"
            b"\r\n" + (b"" if keep_alive else CLOSE) + b'ETag: "' + ABC_TAG + b'"\r\n\r\n')
    assert answers.found(b"abc") == head + b"abc"


def test_the_entity_tag_is_the_storage_etag() -> None:
    assert entity_tag(b"abc") == ABC_TAG
    assert len(ABC_TAG) == 32 and ABC_TAG.lower() == ABC_TAG


@pytest.mark.parametrize(("ms_left", "ttl"), [(1, b"0.001"), (999, b"0.999"), (1000, b"1.000"),
                                              (86_400_123, b"86400.123")])
def test_an_expiring_value_also_says_its_seconds_left(ms_left: int, ttl: bytes) -> None:
    answer = STORE_ANSWERS[True].found_expiring(b"abc", ms_left)
    assert answer == (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: "
                      b'application/octet-stream\r\nETag: "' + ABC_TAG + b'"\r\nWalkv-TTL: '
                      + ttl + b"\r\n\r\nabc")


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_stored_value_is_answered_with_its_etag(keep_alive: bool) -> None:
    assert STORE_ANSWERS[keep_alive].stored(b"abc") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" + (b"" if keep_alive else CLOSE)
        + b'ETag: "' + ABC_TAG + b'"\r\n\r\n')


def test_a_large_value_is_not_copied_into_its_head() -> None:
    value = b"v" * (1 << 20)
    head, sent = STORE_ANSWERS[True].found(value)
    assert sent is value
    assert head.endswith(b"Content-Length: 1048576\r\nContent-Type: application/octet-stream"
                         b'\r\nETag: "' + entity_tag(value) + b'"\r\n\r\n')


# -- judged reads ------------------------------------------------------------------------


class Judged:
    """A ConditionalAnswers whose judge gives ``verdict`` and records what it saw."""

    def __init__(self, verdict: int, keep_alive: bool = True) -> None:
        self.verdict = verdict
        self.seen: list[bytes | None] = []
        self.counted: list[tuple[int, bool]] = []
        self.answers = ConditionalAnswers(keep_alive, self.judge,
                                          lambda status, found: self.counted.append(
                                              (status, found)))

    def judge(self, tag: bytes | None) -> int:
        self.seen.append(tag)
        return self.verdict


def test_a_judged_read_that_may_proceed_is_the_usual_answer() -> None:
    judged = Judged(PROCEED)
    assert judged.answers.found(b"abc") == STORE_ANSWERS[True].found(b"abc")
    assert judged.answers.found_expiring(b"abc", 5) == STORE_ANSWERS[True].found_expiring(
        b"abc", 5)
    assert judged.answers.missing() == STORE_ANSWERS[True].by_outcome[Outcome.NOT_FOUND]
    assert judged.seen == [ABC_TAG, ABC_TAG, None]
    assert judged.counted == [(200, True), (200, True), (404, False)]


@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_not_modified_read_is_304_with_the_etag_and_no_body(keep_alive: bool) -> None:
    judged = Judged(304, keep_alive)
    close = b"" if keep_alive else CLOSE
    assert judged.answers.found(b"abc") == (
        b"HTTP/1.1 304 Not Modified\r\n" + close + b'ETag: "' + ABC_TAG + b'"\r\n\r\n')
    assert judged.answers.found_expiring(b"abc", 2500) == (
        b"HTTP/1.1 304 Not Modified\r\n" + close + b'ETag: "' + ABC_TAG + b'"\r\n'
        b"Walkv-TTL: 2.500\r\n\r\n")
    assert judged.counted == [(304, True), (304, True)]


def test_a_read_whose_precondition_failed_is_412() -> None:
    judged = Judged(412)
    expected = (b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 20\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n\r\nprecondition failed\n")
    assert judged.answers.found(b"abc") == expected
    assert judged.answers.missing() == expected
    assert judged.counted == [(412, True), (412, False)]


# -- evaluated operations ----------------------------------------------------------------


@pytest.mark.parametrize("keep_alive", [True, False])
def test_an_evaluated_operation_is_rendered_once_committed_and_counted(
        keep_alive: bool) -> None:
    counted: list[int] = []
    seen: list[OperationResult] = []

    def render(result: OperationResult) -> Reply:
        seen.append(result)
        return Reply(201, b"{}", b"application/json", ((b"X-A", b"1"),))

    answers = evaluated_answers(render, keep_alive, counted.append)
    page = Page([b"k"])
    assert answers.render is not None
    assert answers.render(Outcome.OK, page) == (
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
        + (b"" if keep_alive else CLOSE) + b"X-A: 1\r\n\r\n{}")
    assert seen == [page] and counted == [201]
    assert answers.close is not keep_alive


@pytest.mark.parametrize("outcome", [Outcome.NO_SPACE, Outcome.FAILED, Outcome.CLOSING])
def test_an_evaluated_operation_not_applied_gets_the_store_answer(outcome: Outcome) -> None:
    counted: list[int] = []
    answers = evaluated_answers(lambda result: Reply(200, b""), True, counted.append)
    assert answers.render is not None
    assert answers.render(outcome, None) == STORE_ANSWERS[True].by_outcome[outcome]
    assert counted == [status_of(outcome)]


def test_every_outcome_and_plain_write_has_exactly_one_http_meaning() -> None:
    assert set(OUTCOMES) == set(Outcome)
    assert set(OP_METHODS) == set(Op) - {Op.EVALUATE, Op.EXPIRE}
    assert [status_of(o) for o in Outcome] == [200, 404, 507, 503, 503]
    assert OP_METHODS == {Op.PUT: "PUT", Op.DELETE: "DELETE", Op.CLEAR: "DELETE"}


@pytest.mark.parametrize(("method", "label"), [
    (b"GET", "GET"), (b"PATCH", "PATCH"), (b"BREW", "other"), (b"", "unknown")])
def test_method_labels(method: bytes, label: str) -> None:
    assert method_label(method) == label
