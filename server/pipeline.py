"""One connection's request pipeline, shared by every protocol: answers in order,
deferral for read-your-writes, write batches, backpressure, idle timeout.

Theory of operation
-------------------
A protocol (``server/http/protocol.py``) subclasses ``Pipeline``: it parses the bytes
it receives into protocol-neutral commands (``server/commands.py``) and hands each to
``execute`` together with an ``Answers`` table, the protocol's answers to that request,
encoded once in advance for every outcome. The pipeline decides when a request runs
and picks its answer from the table by outcome: a lookup per request, never an encode.
It knows no protocol bytes.

Requests on a connection are answered strictly in the order they arrived
(pipelining). Writes complete asynchronously, when their commit group is durable, so
every request that cannot be answered at once takes a *slot* in the connection's
queue, and ``flush`` sends answers from the head of the queue as they become ready.

Writes are not handed to the engine one by one: every connection appends its writes to
the server's ``WriteBatch``, which goes to the engine as one batch at the end of the
event-loop iteration. The committer is then woken once per iteration, not once per
write, and one iteration's writes share a commit group.

Reads are answered at once when nothing is queued ahead of them. Behind a pending
write on the same connection, a read is *deferred*: it waits in the queue and is
evaluated only when it reaches the head, so a client that pipelines a write and then
a read of the same key reads its own write. Once anything is deferred, later writes
are deferred too and submitted only when they reach the head; otherwise a later write
could commit (in the same group as an earlier one) before the read between them is
evaluated. Writes with nothing deferred ahead of them are submitted at once, so a
pipeline of writes shares groups.

Caps (STYLE.md practice 12): at most ``MAX_QUEUED`` answers may be outstanding before
reading pauses; while the transport's send buffer is above its high-water mark (the
peer is not reading), reading pauses, reads already received are deferred instead of
evaluated, and the queue is not flushed, so output stays bounded; all of it resumes
when the buffer drains. Request sizes are the protocol parser's to cap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias, cast

from server.commands import Clear, Delete, Evaluate, Get, Put
from server.state import ServerState
from storage import (
    EngineClosedError,
    EngineFailedError,
    Op,
    OperationResult,
    Outcome,
    Scan,
    Txn,
    Write,
)

MAX_QUEUED: Final = 1024
"""Answers a connection may have outstanding before the server stops reading from it."""
LARGE_VALUE: Final = 64 * 1024
"""Values at least this big are sent after their head instead of copied into it."""
FLUSH_BYTES: Final = 256 * 1024
"""Answers gathered for one write (``Pipeline.cork``) are written once they reach this."""

Answer: TypeAlias = bytes | tuple[bytes, ...]
"""Bytes to send; or a large value with the bytes around it, sent without joining them."""

Render: TypeAlias = Callable[[Outcome, "OperationResult | None"], Answer]
"""Answers an ``Evaluate`` command: its outcome, and its result when that is OK."""

# Module globals, bound once: an enum member is an attribute lookup through the enum's
# metaclass (~100 ns); these are used on every request.
_PUT, _DELETE, _CLEAR, _EVALUATE = Op.PUT, Op.DELETE, Op.CLEAR, Op.EVALUATE
_OK: Final = int(Outcome.OK)
_NOT_FOUND: Final = int(Outcome.NOT_FOUND)
_APPLIED, _CLOSING, _FAILED = Outcome.OK, Outcome.CLOSING, Outcome.FAILED


class Counters:
    """What one front end's connections count as they answer: plain integers only, so
    the request path pays an addition (compiled, a native one); everything else is
    derived when asked (``server/introspection.py``)."""

    __slots__ = ("reads_found", "reads_missing", "refused", "written")

    def __init__(self) -> None:
        self.reads_found = 0
        self.reads_missing = 0
        self.written = [0] * (max(Op) + 1)
        """Plain writes (PUT, DELETE, CLEAR) applied, indexed by op. The records of
        evaluated operations are their effects, not requests: a protocol counts those
        requests itself, as it answers them."""
        self.refused: dict[tuple[Op, Outcome], int] = {}
        """Writes refused before reaching the committer (engine failed or closing),
        by (op, outcome). Writes the committer refused are in ``Engine.stats()``."""

    def count_refused(self, op: Op, outcome: Outcome) -> None:
        """One write answered ``outcome`` without a commit group."""
        key = (op, outcome)
        self.refused[key] = self.refused.get(key, 0) + 1


class Answers:
    """A protocol's answers to one kind of request, encoded in advance.

    ``by_outcome[outcome]`` is the whole answer for that outcome (a write's commit
    group, a read that found nothing). A read that found a value is answered with
    ``found`` (``value_head % len(value)``, the value, then ``value_tail``), or
    ``found_expiring`` when the key has a deadline; a committed PUT with
    ``stored(value)``. A protocol whose answers to these depend on the value (a
    version tag, say) overrides those methods in a subclass. An ``Evaluate`` command
    is answered with ``render(outcome, result)`` whatever its outcome, so a protocol can
    count what it answered. ``close``: the connection closes once this answer is sent.
    """

    __slots__ = ("by_outcome", "close", "render", "value_head", "value_tail")

    def __init__(self, by_outcome: tuple[bytes, ...], *, value_head: bytes,
                 value_tail: bytes = b"", close: bool = False,
                 render: Render | None = None) -> None:
        if len(by_outcome) != len(Outcome):
            raise ValueError("Answers needs one answer per Outcome, in Outcome order")
        self.by_outcome = by_outcome
        self.value_head = value_head
        self.value_tail = value_tail
        self.close = close
        self.render = render

    def found(self, value: bytes) -> Answer:
        """The answer to a read that found ``value``."""
        return self.framed(self.value_head % len(value), value)

    def found_expiring(self, value: bytes, ms_left: int) -> Answer:
        """The answer to a read that found ``value``, which expires in ``ms_left`` ms."""
        return self.found(value)

    def missing(self) -> Answer:
        """The answer to a read that found nothing."""
        return self.by_outcome[_NOT_FOUND]

    def stored(self, value: bytes) -> Answer:
        """The answer to a PUT of ``value`` whose commit group is durable."""
        return self.by_outcome[_OK]

    def framed(self, head: bytes, value: bytes) -> Answer:
        """``head``, ``value`` and ``value_tail``: joined if small, else kept apart."""
        tail = self.value_tail
        if len(value) < LARGE_VALUE:
            return head + value + tail if tail else head + value
        return (head, value, tail) if tail else (head, value)


class Slot:
    """A place in a connection's answer queue.

    ``data`` is the answer once known. A deferred request has not run yet: a read has
    ``deferred_read`` (its key) or ``deferred_call`` (a function computing its answer)
    set, a write ``deferred_write``, and each runs when it reaches the head of the
    queue. A submitted write's slot is the waiter the storage
    engine hands back when its group commits; ``op`` is the write's, and ``stored``
    the value a PUT stores (None for other writes).
    """

    __slots__ = ("answers", "close", "conn", "data", "deferred_call", "deferred_read",
                 "deferred_write", "op", "stored")

    def __init__(self, conn: Pipeline, answers: Answers, data: Answer | None = None,
                 deferred_read: bytes | None = None,
                 deferred_write: tuple[Op, bytes, bytes | Txn | Scan | None] | None = None,
                 op: Op = _EVALUATE, stored: bytes | None = None,
                 deferred_call: Callable[[], Answer] | None = None) -> None:
        self.conn = conn
        self.answers = answers
        self.close = answers.close
        self.data = data
        self.deferred_read = deferred_read
        self.deferred_call = deferred_call
        self.deferred_write = deferred_write
        self.op = op
        self.stored = stored


def complete_group(slots: Sequence[Slot], outcome: Outcome,
                   results: Sequence[OperationResult | None] | None = None) -> None:
    """Answer every write of one commit group (runs on the event loop)."""
    if outcome is not _APPLIED:
        for slot in slots:
            slot.data = _not_applied(slot, outcome)
            slot.conn.flush()
    elif results is None:  # a group of plain writes, the usual case
        for slot in slots:
            _applied(slot)
        _flush_each(slots)
    else:
        for slot, result in zip(slots, results, strict=True):
            render = slot.answers.render
            if result is None or render is None:
                _applied(slot)
            else:
                slot.data = render(outcome, result)
        _flush_each(slots)


def _flush_each(slots: Sequence[Slot]) -> None:
    """Flush every connection with a slot among ``slots`` once, in their order."""
    last: Pipeline | None = None
    for slot in slots:
        conn = slot.conn
        if conn is not last:
            conn.flush()
            last = conn


def _applied(slot: Slot) -> None:
    """Answer a plain write whose group is durable, and count it."""
    stored = slot.stored
    answers = slot.answers
    slot.data = answers.by_outcome[_OK] if stored is None else answers.stored(stored)
    slot.conn.counters.written[slot.op] += 1


def _not_applied(slot: Slot, outcome: Outcome) -> Answer:
    """The answer to a write that was refused, or whose group failed."""
    answers = slot.answers
    render = answers.render
    return answers.by_outcome[int(outcome)] if render is None else render(outcome, None)


class WriteBatch:
    """The writes submitted during one event-loop iteration, handed to the engine at its end.

    Connections append ``(op, key, value, slot)`` to ``pending`` and call ``schedule``
    when they made it non-empty. A refused batch (engine failed or closing) is answered
    at once, write by write.
    """

    __slots__ = ("_call_soon", "_submit_batch", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 submit_batch: Callable[[list[Write]], None]) -> None:
        self.pending: list[Write] = []
        self._call_soon = loop.call_soon
        self._submit_batch = submit_batch

    def schedule(self) -> None:
        """Hand ``pending`` over once the loop has run this iteration's callbacks."""
        self._call_soon(self._hand_over)

    def _hand_over(self) -> None:
        writes = self.pending[:]  # the list itself stays bound in every connection
        self.pending.clear()
        try:
            self._submit_batch(writes)
        except EngineClosedError:
            _refuse(writes, _CLOSING)
        except EngineFailedError:
            _refuse(writes, _FAILED)


def _refuse(writes: list[Write], outcome: Outcome) -> None:
    """The engine would not take the writes: answer each now, and count it."""
    for op, _, _, waiter in writes:
        slot = cast(Slot, waiter)
        slot.data = _not_applied(slot, outcome)
        if outcome is _CLOSING:
            slot.close = True  # the server is going away: this is the last answer
        slot.conn.counters.count_refused(op, outcome)
        slot.conn.flush()


class Pipeline(asyncio.Protocol):
    """asyncio protocol base for one client connection (see the module docstring).

    A subclass implements ``received`` (parse bytes, then ``execute`` commands or
    ``answer`` what needs no store) and may override ``over_limit``. While
    ``_closing`` is set the connection closes once the answers owed are sent, so a
    protocol takes no new request as one that keeps the connection open.
    """

    __slots__ = ("_active", "_batch", "_closing", "_cork", "_cork_bytes", "_deferred",
                 "_expires", "_get", "_idle", "_paused", "_peer_full", "_pending", "_queue",
                 "_state", "_transport", "counters")

    def __init__(self, state: ServerState, batch: WriteBatch, counters: Counters) -> None:
        self._state = state
        self.counters = counters
        self._transport: asyncio.Transport | None = None
        self._queue: deque[Slot] = deque()
        self._deferred = 0
        """Queued requests not run yet (reads and writes waiting for the head)."""
        self._peer_full = False
        self._paused = False
        self._closing = False
        """Close once nothing more is owed (client half-closed, or server shutdown)."""
        self._active = False
        """Data arrived since the idle timer last looked (cheaper than a clock read)."""
        self._get = state.table_get
        self._expires = state.expires
        self._batch = batch
        self._pending = batch.pending
        self._idle: asyncio.TimerHandle | None = None
        self._cork: list[bytes] | None = None
        """While corked (``cork``): answers gathered for one write."""
        self._cork_bytes = 0

    # -- for subclasses -----------------------------------------------------------------
    def received(self, data: bytes) -> None:
        """Parse ``data`` and act on every request it completes."""
        raise NotImplementedError

    def over_limit(self) -> bytes:
        """What a connection over ``max_connections`` is sent before it is closed."""
        return b""

    def execute(self, cmd: object, answers: Answers) -> bool:
        """Run a store command, answered from ``answers``; False if ``cmd`` is none."""
        kind = type(cmd)
        if kind is Get:
            key = cast(Get, cmd).key
            if self._queue or self._peer_full:
                self._defer(Slot(self, answers, deferred_read=key))
            else:
                self._send(self._read(key, answers), answers.close)
        elif kind is Put:
            put = cast(Put, cmd)
            self._write(_PUT, put.key, put.value, answers, put.value)
        elif kind is Delete:
            self._write(_DELETE, cast(Delete, cmd).key, None, answers)
        elif kind is Clear:
            self._write(_CLEAR, b"", None, answers)
        elif kind is Evaluate:
            self._evaluate(cast(Evaluate, cmd).operation, answers)
        else:
            return False
        return True

    def compute(self, read: Callable[[], Answer]) -> None:
        """A read of the committed state that is not a plain key lookup: ``read()``
        makes its answer, now or, behind this connection's earlier requests, when it
        reaches the head of the queue (so it sees this connection's own writes)."""
        if self._queue or self._peer_full:
            self._defer(Slot(self, _IMMEDIATE, deferred_call=read))
        else:
            self._send(read(), False)

    def answer(self, data: bytes, close: bool) -> None:
        """An answer known now: send it, or queue it behind earlier ones."""
        if self._queue:
            slot = Slot(self, _IMMEDIATE, data=data)
            slot.close = close
            self._queue.append(slot)
        else:
            self._send(data, close)

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        state = self._state
        state.connections.add(self)
        if len(state.connections) > state.max_connections:
            state.connections_rejected += 1
            transport.write(self.over_limit())
            transport.close()
            return
        self._idle = state.loop.call_later(state.config.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._queue.clear()
        self._deferred = 0
        if self._idle is not None:
            self._idle.cancel()
        self._state.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self._active = True
        self.received(data)
        if len(self._queue) >= MAX_QUEUED:
            self._update_reading()

    def eof_received(self) -> bool | None:
        # The client finished sending (half-close): answer what is queued, then close.
        if not self._queue:
            return None  # asyncio closes the transport
        self._closing = True
        return True

    def pause_writing(self) -> None:
        self._peer_full = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._peer_full = False
        self.flush()
        self._update_reading()

    # -- running requests ---------------------------------------------------------------
    def _evaluate(self, operation: Txn | Scan, answers: Answers) -> None:
        # A scan reads the table as the previous group left it, so behind this
        # connection's own pending writes it waits for them, like a read.
        if type(operation) is Scan and (self._queue or self._peer_full):
            self._defer(Slot(self, answers, deferred_write=(_EVALUATE, b"", operation)))
            return
        self._write(_EVALUATE, b"", operation, answers)

    def _write(self, op: Op, key: bytes, value: bytes | Txn | Scan | None,
               answers: Answers, stored: bytes | None = None) -> None:
        if self._deferred:
            self._defer(Slot(self, answers, deferred_write=(op, key, value), op=op,
                             stored=stored))
            return
        slot = Slot(self, answers, op=op, stored=stored)
        self._queue.append(slot)
        self._submit(slot, op, key, value)

    def _submit(self, slot: Slot, op: Op, key: bytes, value: bytes | Txn | Scan | None) -> None:
        """Add a queued write to this iteration's batch; ``slot`` hears of its group."""
        pending = self._pending
        pending.append((op, key, value, slot))
        if len(pending) == 1:
            self._batch.schedule()

    def _defer(self, slot: Slot) -> None:
        self._deferred += 1
        self._queue.append(slot)

    def _read(self, key: bytes, answers: Answers) -> Answer:
        """The answer to a read of ``key``, from the committed table."""
        value = self._get(key)
        if value is not None:
            if self._expires:  # some key has a deadline: maybe this one
                return self._read_expiring(key, value, answers)
            self.counters.reads_found += 1
            return answers.found(value)
        self.counters.reads_missing += 1
        return answers.missing()

    def _read_expiring(self, key: bytes, value: bytes, answers: Answers) -> Answer:
        deadline = self._expires.get(key)
        if deadline is None:
            self.counters.reads_found += 1
            return answers.found(value)
        ms_left = deadline - self._state.now_ms()
        if ms_left <= 0:
            self.counters.reads_missing += 1
            return answers.missing()
        self.counters.reads_found += 1
        return answers.found_expiring(value, ms_left)

    # -- sending answers ----------------------------------------------------------------
    def flush(self) -> None:
        """Send every ready answer at the head of the queue, in order: the answers
        ready together go out in one write (corked, see ``cork``)."""
        queue = self._queue
        corked_here = self._cork is None
        if corked_here:
            self.cork()
        # While the peer is not reading, answers wait unevaluated in the queue; otherwise
        # one received chunk of pipelined reads could produce gigabytes of output.
        while queue and not self._peer_full:
            slot = queue[0]
            data = slot.data
            if data is None:
                if slot.deferred_read is not None:
                    self._deferred -= 1
                    data = self._read(slot.deferred_read, slot.answers)
                elif slot.deferred_call is not None:
                    self._deferred -= 1
                    data = slot.deferred_call()
                elif slot.deferred_write is not None:
                    self._deferred -= 1
                    op, key, value = slot.deferred_write
                    slot.deferred_write = None
                    self._submit(slot, op, key, value)
                    break  # answered when its group commits
                else:
                    break  # a write still waiting for its commit group
            queue.popleft()
            self._send(data, slot.close)
        if corked_here:
            self.uncork()
        if self._paused and len(queue) < MAX_QUEUED // 2:
            self._update_reading()

    def _gather(self, cork: list[bytes], data: Answer) -> None:
        if type(data) is bytes:
            cork.append(data)
            self._cork_bytes += len(data)
        else:
            parts = cast(tuple[bytes, ...], data)
            cork.extend(parts)
            self._cork_bytes += sum(map(len, parts))
        if self._cork_bytes >= FLUSH_BYTES:  # write now: the peer may push back
            self._write_all(cork)
            self._cork = []
            self._cork_bytes = 0

    def _write_all(self, ready: list[bytes]) -> None:
        transport = self._transport
        if transport is None or not ready:
            return
        if len(ready) == 1:
            transport.write(ready[0])
        else:
            transport.writelines(ready)

    def cork(self) -> None:
        """Gather the answers sent from now until ``uncork`` into one write (a protocol
        calls it around the several requests of one read; ``flush`` around the answers
        it sends)."""
        if self._cork is None:
            self._cork = []
            self._cork_bytes = 0

    def uncork(self) -> None:
        """Write what ``cork`` gathered."""
        cork = self._cork
        self._cork = None
        if cork:
            self._write_all(cork)
        if self._closing and not self._queue and self._transport is not None:
            self._transport.close()

    def _send(self, data: Answer, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        cork = self._cork
        if cork is not None:
            if not close:
                self._gather(cork, data)
                return
            self._cork = None  # the last answer: everything gathered goes first
            self._write_all(cork)
        if type(data) is bytes:
            transport.write(data)
        else:  # a large value, sent between its head and tail rather than copied
            for part in cast(tuple[bytes, ...], data):
                transport.write(part)
        if close:
            self._queue.clear()
            self._deferred = 0
            transport.close()
        elif self._closing and not self._queue:
            transport.close()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        want_pause = self._peer_full or len(self._queue) >= MAX_QUEUED
        if want_pause and not self._paused:
            self._paused = True
            transport.pause_reading()
        elif not want_pause and self._paused:
            self._paused = False
            transport.resume_reading()

    # -- idle and shutdown --------------------------------------------------------------
    def _check_idle(self) -> None:
        # Runs every idle_timeout seconds: a connection that received nothing since the
        # last look and owes no answers is closed (so after one to two timeouts).
        transport = self._transport
        if transport is None:
            return
        if self._active or self._queue:
            self._active = False
            self._idle = self._state.loop.call_later(self._state.config.idle_timeout,
                                                     self._check_idle)
            return
        transport.close()

    def shutdown(self) -> None:
        """Stop taking requests: close now if nothing is owed, else after the answers."""
        self._closing = True
        if not self._queue and self._transport is not None:
            self._transport.close()


_IMMEDIATE: Final = Answers((b"",) * len(Outcome), value_head=b"")
"""The table of a slot whose answer was known when it was queued (never looked up)."""
