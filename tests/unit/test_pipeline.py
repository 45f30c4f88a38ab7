"""The shared pipeline under a second protocol: a toy line protocol written in a few
lines gets ordered answers, read-your-writes, one batch per loop iteration, refusals
and backpressure without any code of its own, which is what the next real protocol
relies on.

Compiled classes cannot be subclassed by interpreted ones, so the toy protocol
subclasses the pipeline's Python source, loaded on its own here; the compiled build of
the same source runs under HTTP in the integration tests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from server.commands import CLEAR, Delete, Evaluate, Get, Put
from server.config import Config
from server.state import ServerState
from storage import (
    EngineClosedError,
    EngineFailedError,
    Keyspace,
    Op,
    OperationResult,
    Outcome,
    Page,
    Scan,
    Txn,
    Write,
)

SOURCE = Path(__file__).resolve().parents[2] / "server" / "pipeline.py"


def load_source() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipeline_source", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pipeline = load_source()

ANSWERS = pipeline.Answers((b"OK\n", b"NIL\n", b"FULL\n", b"FAIL\n", b"BYE\n"),
                           value_head=b"VAL %d ", value_tail=b"\n")


def parse(line: bytes) -> object:
    verb, _, rest = line.partition(b" ")
    key, _, value = rest.partition(b" ")
    if verb == b"GET":
        return Get(key)
    if verb == b"PUT":
        return Put(key, value)
    if verb == b"DEL":
        return Delete(key)
    return CLEAR if verb == b"CLEAR" else None


class LineConnection(pipeline.Pipeline):  # type: ignore[misc,name-defined]
    """``GET k``, ``PUT k v``, ``DEL k``, ``CLEAR``, one per line."""

    def received(self, data: bytes) -> None:
        for line in data.splitlines():
            if not self.execute(parse(line), ANSWERS):
                self.answer(b"ERR\n", close=True)

    def over_limit(self) -> bytes:
        return b"BUSY\n"


class Loop:
    """Just enough of an event loop: callbacks run when the test says so."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self

    def cancel(self) -> None:
        pass

    def end_of_iteration(self) -> None:
        soon, self.soon = self.soon, []
        for callback in soon:
            callback()


class Transport:
    def __init__(self) -> None:
        self.sent = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.sent += data
        self.writes = getattr(self, "writes", 0) + 1

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Engine:
    """A committer stand-in: takes batches, commits them when told."""

    def __init__(self) -> None:
        self.table: dict[bytes, bytes] = {}
        self.batches: list[list[Write]] = []
        self.refuse: Exception | None = None

    def submit_batch(self, writes: list[Write]) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.batches.append(writes)

    def commit(self, outcome: Outcome = Outcome.OK) -> None:
        for batch in self.batches:
            if outcome is Outcome.OK:
                for op, key, value, _ in batch:
                    if op == Op.PUT:
                        self.table[key] = value  # type: ignore[assignment]
                    elif op == Op.DELETE:
                        self.table.pop(key, None)
                    else:
                        self.table.clear()
            pipeline.complete_group([w[3] for w in batch], outcome)
        self.batches = []


class Rig:
    def __init__(self, max_connections: int = 8) -> None:
        self.loop = Loop()
        self.engine = Engine()
        self.state = ServerState(Config(), Keyspace(self.engine.table), self.loop,  # type: ignore[arg-type]
                                 max_connections)
        self.batch = pipeline.WriteBatch(self.loop, self.engine.submit_batch)
        self.counters = pipeline.Counters()

    def connect(self) -> tuple[Any, Transport]:
        conn = LineConnection(self.state, self.batch, self.counters)
        transport = Transport()
        conn.connection_made(transport)
        return conn, transport


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_read_with_nothing_queued_is_answered_at_once(rig: Rig) -> None:
    rig.engine.table[b"k"] = b"v"
    conn, transport = rig.connect()
    conn.data_received(b"GET k\nGET nope\n")
    assert transport.sent == b"VAL 1 v\nNIL\n"
    assert (rig.counters.reads_found, rig.counters.reads_missing) == (1, 1)


def test_answers_keep_request_order_and_a_read_sees_the_write_before_it(rig: Rig) -> None:
    conn, transport = rig.connect()
    conn.data_received(b"PUT k 1\nGET k\nPUT k 2\nGET k\n")
    assert transport.sent == b""  # nothing is answered before its write is durable
    rig.loop.end_of_iteration()
    assert [len(b) for b in rig.engine.batches] == [1]  # the second PUT waits its turn
    rig.engine.commit()
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.sent == b"OK\nVAL 1 1\nOK\nVAL 1 2\n"


def test_one_loop_iteration_is_one_batch_for_every_connection(rig: Rig) -> None:
    a, sent_a = rig.connect()
    b, sent_b = rig.connect()
    a.data_received(b"PUT x 1\nPUT y 2\n")
    b.data_received(b"DEL x\nCLEAR\n")
    rig.loop.end_of_iteration()
    [batch] = rig.engine.batches
    assert [(op, key) for op, key, _, _ in batch] == [
        (Op.PUT, b"x"), (Op.PUT, b"y"), (Op.DELETE, b"x"), (Op.CLEAR, b"")]
    rig.engine.commit()
    assert (sent_a.sent, sent_b.sent) == (b"OK\nOK\n", b"OK\nOK\n")


@pytest.mark.parametrize(("outcome", "answer"), [(Outcome.NO_SPACE, b"FULL\n"),
                                                 (Outcome.FAILED, b"FAIL\n")])
def test_a_group_outcome_picks_the_answer_from_the_table(rig: Rig, outcome: Outcome,
                                                         answer: bytes) -> None:
    conn, transport = rig.connect()
    conn.data_received(b"PUT k v\n")
    rig.loop.end_of_iteration()
    rig.engine.commit(outcome)
    assert transport.sent == answer and not transport.closed


def test_a_closing_engine_answers_closing_and_ends_the_connection(rig: Rig) -> None:
    conn, transport = rig.connect()
    rig.engine.refuse = EngineClosedError("closing")
    conn.data_received(b"PUT k v\n")
    rig.loop.end_of_iteration()
    assert transport.sent == b"BYE\n" and transport.closed
    assert rig.counters.refused == {(Op.PUT, Outcome.CLOSING): 1}


def test_a_failed_engine_refuses_without_closing(rig: Rig) -> None:
    conn, transport = rig.connect()
    rig.engine.refuse = EngineFailedError("fsync failed")
    conn.data_received(b"DEL k\n")
    rig.loop.end_of_iteration()
    assert transport.sent == b"FAIL\n" and not transport.closed
    assert rig.counters.refused == {(Op.DELETE, Outcome.FAILED): 1}


def test_an_immediate_answer_waits_behind_earlier_ones_then_closes(rig: Rig) -> None:
    conn, transport = rig.connect()
    conn.data_received(b"PUT k v\nBOGUS\n")
    rig.loop.end_of_iteration()
    assert transport.sent == b""
    rig.engine.commit()
    assert transport.sent == b"OK\nERR\n" and transport.closed


def test_while_the_peer_does_not_read_reads_wait_unevaluated(rig: Rig) -> None:
    rig.engine.table[b"k"] = b"old"
    conn, transport = rig.connect()
    conn.pause_writing()
    assert not transport.reading
    conn.data_received(b"GET k\n")
    rig.engine.table[b"k"] = b"new"
    assert transport.sent == b""
    conn.resume_writing()
    assert transport.sent == b"VAL 3 new\n" and transport.reading


def test_too_many_queued_answers_pause_reading_until_half_are_sent(rig: Rig) -> None:
    conn, transport = rig.connect()
    conn.data_received(b"PUT k v\n" * pipeline.MAX_QUEUED)
    assert not transport.reading
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.reading and transport.sent == b"OK\n" * pipeline.MAX_QUEUED


def test_a_connection_over_the_limit_gets_the_protocols_refusal() -> None:
    rig = Rig(max_connections=1)
    rig.connect()
    _, transport = rig.connect()
    assert transport.sent == b"BUSY\n" and transport.closed
    assert rig.state.connections_rejected == 1


def test_shutdown_closes_once_the_answers_owed_are_sent(rig: Rig) -> None:
    conn, transport = rig.connect()
    conn.data_received(b"PUT k v\n")
    conn.shutdown()
    assert not transport.closed
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.sent == b"OK\n" and transport.closed


def test_every_outcome_needs_an_answer() -> None:
    with pytest.raises(ValueError, match="one answer per Outcome"):
        pipeline.Answers((b"OK\n",), value_head=b"VAL %d ")


# -- what a protocol may make of values, deadlines and evaluated operations ---------------


class Tagged(pipeline.Answers):  # type: ignore[misc,name-defined]
    """Answers that depend on the value, as HTTP's ETag answers do."""

    def stored(self, value: bytes) -> bytes:
        return b"STORED " + value + b"\n"

    def found_expiring(self, value: bytes, ms_left: int) -> bytes:
        return b"VAL %s EXPIRES IN %ds\n" % (value, ms_left // 1000)


TAGGED = Tagged(ANSWERS.by_outcome, value_head=b"VAL %d ", value_tail=b"\n")


def test_a_committed_put_is_answered_from_its_value_and_every_write_is_counted(
        rig: Rig) -> None:
    conn, transport = rig.connect()
    for command in (Put(b"k", b"v"), Delete(b"k"), CLEAR, Put(b"j", b"w")):
        conn.execute(command, TAGGED)
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.sent == b"STORED v\nOK\nOK\nSTORED w\n"
    assert [rig.counters.written[op] for op in (Op.PUT, Op.DELETE, Op.CLEAR)] == [2, 1, 1]


def test_writes_not_applied_are_not_counted_as_written(rig: Rig) -> None:
    conn, transport = rig.connect()
    conn.execute(Put(b"k", b"v"), TAGGED)
    rig.loop.end_of_iteration()
    rig.engine.commit(Outcome.NO_SPACE)
    assert transport.sent == b"FULL\n" and sum(rig.counters.written) == 0


def test_a_read_of_a_key_with_a_deadline_is_told_the_time_left(rig: Rig) -> None:
    rig.engine.table.update({b"soon": b"1", b"gone": b"2", b"kept": b"3"})
    now = rig.state.now_ms()
    rig.state.expires.update({b"soon": now + 10_500, b"gone": now - 1})
    conn, transport = rig.connect()
    conn.execute(Get(b"soon"), TAGGED)
    conn.execute(Get(b"gone"), TAGGED)
    conn.execute(Get(b"kept"), TAGGED)
    assert transport.sent == b"VAL 1 EXPIRES IN 10s\nNIL\nVAL 1 3\n"
    assert (rig.counters.reads_found, rig.counters.reads_missing) == (2, 1)


class Rendered:
    """An Evaluate command's answers that record every call to ``render``."""

    def __init__(self) -> None:
        self.calls: list[tuple[Outcome, OperationResult | None]] = []
        self.answers = pipeline.Answers(ANSWERS.by_outcome, value_head=b"",
                                        render=self.render)

    def render(self, outcome: Outcome, result: OperationResult | None) -> bytes:
        self.calls.append((outcome, result))
        return b"RENDERED %s\n" % outcome.name.encode()


def test_an_evaluated_operation_is_rendered_whatever_its_outcome(rig: Rig) -> None:
    conn, transport = rig.connect()
    rendered = Rendered()
    conn.execute(Put(b"k", b"v"), TAGGED)
    conn.execute(Evaluate(Txn()), rendered.answers)
    conn.execute(Evaluate(Txn()), rendered.answers)
    rig.loop.end_of_iteration()
    [batch] = rig.engine.batches
    slots = [write[3] for write in batch]
    page = Page([b"k"])
    pipeline.complete_group(slots[:2], Outcome.OK, [None, page])
    pipeline.complete_group(slots[2:], Outcome.FAILED)
    assert transport.sent == b"STORED v\nRENDERED OK\nRENDERED FAILED\n"
    assert rendered.calls == [(Outcome.OK, page), (Outcome.FAILED, None)]
    assert rig.counters.written[Op.PUT] == 1 and rig.counters.written[Op.EVALUATE] == 0


def test_an_evaluated_operation_the_engine_refuses_is_rendered_refused(rig: Rig) -> None:
    conn, transport = rig.connect()
    rendered = Rendered()
    rig.engine.refuse = EngineClosedError("closing")
    conn.execute(Evaluate(Scan()), rendered.answers)
    rig.loop.end_of_iteration()
    assert transport.sent == b"RENDERED CLOSING\n" and transport.closed
    assert rendered.calls == [(Outcome.CLOSING, None)]


def test_a_scan_behind_a_pending_write_waits_for_it(rig: Rig) -> None:
    conn, _ = rig.connect()
    conn.execute(Put(b"k", b"v"), TAGGED)
    conn.execute(Evaluate(Scan()), Rendered().answers)
    rig.loop.end_of_iteration()
    assert [[w[0] for w in b] for b in rig.engine.batches] == [[Op.PUT]]
    rig.engine.commit()
    rig.loop.end_of_iteration()
    assert [[w[0] for w in b] for b in rig.engine.batches] == [[Op.EVALUATE]]


def test_pipelined_answers_that_are_ready_together_go_out_in_one_write(rig: Rig) -> None:
    rig.engine.table[b"k"] = b"v"
    conn, transport = rig.connect()
    conn.data_received(b"PUT a 1\nPUT b 2\nPUT c 3\n")
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.sent == b"OK\nOK\nOK\n"
    assert transport.writes == 1
    conn.data_received(b"PUT d 4\nGET k\nGET k\n")  # the reads wait behind the write
    rig.loop.end_of_iteration()
    rig.engine.commit()
    assert transport.sent.endswith(b"OK\nVAL 1 v\nVAL 1 v\n") and transport.writes == 2


def test_corked_answers_go_out_in_one_write_in_order(rig: Rig) -> None:
    rig.engine.table[b"k"] = b"v"
    conn, transport = rig.connect()
    conn.cork()
    conn.data_received(b"GET k\nGET nope\nGET k\n")
    assert transport.sent == b""
    conn.uncork()
    assert transport.sent == b"VAL 1 v\nNIL\nVAL 1 v\n" and transport.writes == 1


def test_a_cork_is_written_early_once_it_holds_flush_bytes(rig: Rig) -> None:
    big = b"x" * (pipeline.FLUSH_BYTES // 2 + 1)
    rig.engine.table[b"big"] = big
    conn, transport = rig.connect()
    conn.cork()
    conn.data_received(b"GET big\nGET big\nGET big\n")
    assert transport.writes == 1  # the first two, as soon as they passed FLUSH_BYTES
    conn.uncork()
    assert transport.sent == (b"VAL %d %s\n" % (len(big), big)) * 3
    assert transport.writes == 2
