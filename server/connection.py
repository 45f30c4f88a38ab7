"""One HTTP connection: bytes from the socket to commands, answers back in order.

Requests on a connection are answered strictly in the order they arrived (HTTP/1.1
pipelining). Writes complete asynchronously, when their commit group is durable, so
every request that cannot be answered at once takes a *slot* in the connection's
queue, and ``_flush`` writes answers from the head of the queue as they become ready.

Writes are not handed to the engine one by one: every connection appends its writes
to the server's pending list (`WriteBatch`), which goes to the engine as one batch at
the end of the event-loop iteration. The committer is then woken once per iteration,
not once per write, and one iteration's writes share a commit group.

Reads are answered at once when nothing is queued ahead of them. Behind a pending
write on the same connection, a read is *deferred*: it waits in the queue and is
evaluated only when it reaches the head, so a client that pipelines PUT then GET reads
its own write. Once anything is deferred, later writes are deferred too and submitted
only when they reach the head; otherwise a later write could commit (in the same group
as an earlier one) before the read between them is evaluated. Writes with nothing
deferred ahead of them are submitted at once, so a pipeline of writes shares groups.

Caps (STYLE.md practice 12): header and body sizes are enforced by the parser; at most
``MAX_QUEUED`` answers may be outstanding before reading pauses; while the transport's
write buffer is above its high-water mark (the peer is not reading), reading pauses,
reads already received are deferred instead of evaluated, and the queue is not
flushed, so output stays bounded; all of it resumes when the buffer drains.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from server.commands import KEY_NOT_FOUND, Clear, Delete, Get, Put
from server.http import (
    CONTINUE_RESPONSE,
    OK_EMPTY,
    TEXT_PLAIN,
    VALUE_HEADS,
    ContinueExpected,
    ProtocolError,
    Request,
    RequestParser,
    encode_response,
    error_response,
)
from server.router import route
from storage import EngineClosedError, EngineFailedError, Op, Outcome, Write

if TYPE_CHECKING:
    from server.app import ServerState
    from server.metrics import RequestCounters

MAX_QUEUED = 1024
"""Answers a connection may have outstanding before the server stops reading from it."""
_LARGE_VALUE = 64 * 1024
"""Values at least this big are written after their head instead of copied into it."""

# Enum members bound once: `Op.PUT` is an attribute lookup through the enum's metaclass
# (~100 ns), a module global is ~20 ns, and these are used on every write.
_PUT, _DELETE, _CLEAR = Op.PUT, Op.DELETE, Op.CLEAR
_OK, _NO_SPACE_OUTCOME = Outcome.OK, Outcome.NO_SPACE

_KEY_NOT_FOUND = (KEY_NOT_FOUND.encode(False), KEY_NOT_FOUND.encode(True))
_UNAVAILABLE = (
    encode_response(503, b"storage unavailable\n", content_type=TEXT_PLAIN, keep_alive=False),
    encode_response(503, b"storage unavailable\n", content_type=TEXT_PLAIN),
)
_NO_SPACE = (
    encode_response(507, b"insufficient storage\n", content_type=TEXT_PLAIN, keep_alive=False),
    encode_response(507, b"insufficient storage\n", content_type=TEXT_PLAIN),
)
_SHUTTING_DOWN = encode_response(503, b"server is shutting down\n", content_type=TEXT_PLAIN,
                                 keep_alive=False)
TOO_MANY_CONNECTIONS = encode_response(503, b"too many connections\n", content_type=TEXT_PLAIN,
                                       keep_alive=False)


class Slot:
    """A place in a connection's answer queue.

    ``data`` is the answer once known. A deferred request has not been executed yet:
    a read has ``key`` set, a write has ``write`` set, and either runs when it reaches
    the head of the queue. A submitted write's slot is the waiter the storage engine
    hands back when its group commits.
    """

    __slots__ = ("conn", "data", "keep_alive", "key", "write")

    def __init__(self, conn: HttpConnection, keep_alive: bool, data: bytes | None = None,
                 key: bytes | None = None,
                 write: tuple[Op, bytes, bytes | None] | None = None) -> None:
        self.conn = conn
        self.keep_alive = keep_alive
        self.data = data
        self.key = key
        self.write = write


def complete_group(slots: Sequence[Slot], outcome: Outcome) -> None:
    """Answer every write of one commit group (runs on the event loop)."""
    if outcome is _OK:
        answers = OK_EMPTY
    elif outcome is _NO_SPACE_OUTCOME:
        answers = _NO_SPACE
    else:
        answers = _UNAVAILABLE
    for slot in slots:
        slot.data = answers[slot.keep_alive]
        slot.conn.flush()


class WriteBatch:
    """The writes submitted during one event-loop iteration, handed to the engine at its end.

    Connections append ``(op, key, value, slot)`` to ``pending`` and call ``schedule``
    when they made it non-empty. A refused batch (engine failed or closing) is answered
    at once, write by write.
    """

    __slots__ = ("_call_soon", "_counters", "_submit_batch", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 submit_batch: Callable[[list[Write]], None], counters: RequestCounters) -> None:
        self.pending: list[Write] = []
        self._call_soon = loop.call_soon
        self._submit_batch = submit_batch
        self._counters = counters

    def schedule(self) -> None:
        """Hand ``pending`` over once the loop has run this iteration's callbacks."""
        self._call_soon(self._hand_over)

    def _hand_over(self) -> None:
        writes = self.pending[:]  # the list itself stays bound in every connection
        self.pending.clear()
        try:
            self._submit_batch(writes)
        except (EngineFailedError, EngineClosedError) as exc:
            self._refuse(writes, exc)

    def _refuse(self, writes: list[Write], exc: EngineFailedError | EngineClosedError) -> None:
        """The engine would not take the writes: answer each now, and count the 503s."""
        closing = isinstance(exc, EngineClosedError)
        for op, _, _, slot in writes:
            if closing:
                slot.data, slot.keep_alive = _SHUTTING_DOWN, False
            else:
                slot.data = _UNAVAILABLE[slot.keep_alive]
            self._counters.count(b"PUT" if op is _PUT else b"DELETE", 503)
            slot.conn.flush()


class HttpConnection(asyncio.Protocol):
    """asyncio protocol for one client connection (see the module docstring)."""

    __slots__ = ("_active", "_batch", "_closing", "_deferred", "_get", "_idle", "_parser",
                 "_paused", "_peer_full", "_pending", "_queue", "_state", "_transport")

    def __init__(self, state: ServerState) -> None:
        self._state = state
        cfg = state.config
        self._parser = RequestParser(max_header_bytes=cfg.max_header_bytes,
                                     max_body_bytes=cfg.max_value_bytes)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[Slot] = deque()
        self._deferred = 0
        """Queued requests not executed yet (reads and writes waiting for the head)."""
        self._peer_full = False
        self._paused = False
        self._closing = False
        """Close once nothing more is owed (client half-closed, or server shutdown)."""
        self._active = False
        """Data arrived since the idle timer last looked (cheaper than a clock read)."""
        self._get = state.table_get
        self._batch = state.write_batch
        self._pending = state.write_batch.pending
        self._idle: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        state = self._state
        state.connections.add(self)
        if len(state.connections) > state.max_connections:
            state.counters.connections_rejected += 1
            transport.write(TOO_MANY_CONNECTIONS)
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
        for event in self._parser.feed(data):
            kind = type(event)
            if kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is ContinueExpected:
                self._answer(CONTINUE_RESPONSE, keep_alive=True)
            else:
                assert isinstance(event, ProtocolError)
                self._state.counters.count(b"", event.status)
                self._answer(error_response(event), keep_alive=False)
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

    # -- requests -----------------------------------------------------------------------
    def _on_request(self, req: Request) -> None:
        cmd = route(req)
        keep_alive = req.keep_alive and not self._closing
        kind = type(cmd)
        if kind is Get:
            key = cmd.key  # type: ignore[union-attr]
            if self._queue or self._peer_full:
                self._defer(Slot(self, keep_alive, key=key))
            else:
                self._write(self._read(key, keep_alive), keep_alive)
        elif kind is Put:
            self._write_command(_PUT, cmd.key, cmd.value, keep_alive)  # type: ignore[union-attr]
        elif kind is Delete:
            self._write_command(_DELETE, cmd.key, None, keep_alive)  # type: ignore[union-attr]
        elif kind is Clear:
            self._write_command(_CLEAR, b"", None, keep_alive)
        else:  # a Reply, or an Introspect command (server/metrics.py)
            self._answer(self._state.reply(req.method, cmd, keep_alive), keep_alive)

    def _write_command(self, op: Op, key: bytes, value: bytes | None, keep_alive: bool) -> None:
        if self._deferred:
            self._defer(Slot(self, keep_alive, write=(op, key, value)))
            return
        slot = Slot(self, keep_alive)
        self._queue.append(slot)
        self._submit(slot, op, key, value)

    def _submit(self, slot: Slot, op: Op, key: bytes, value: bytes | None) -> None:
        """Add a queued write to this iteration's batch; ``slot`` hears of its group."""
        pending = self._pending
        pending.append((op, key, value, slot))
        if len(pending) == 1:
            self._batch.schedule()

    def _defer(self, slot: Slot) -> None:
        self._deferred += 1
        self._queue.append(slot)

    def _read(self, key: bytes, keep_alive: bool) -> bytes | tuple[bytes, bytes]:
        """The answer to a GET of ``key``, from the committed table."""
        value = self._get(key)
        if value is None:
            self._state.get_misses += 1
            return _KEY_NOT_FOUND[keep_alive]
        self._state.get_hits += 1
        size = len(value)
        if size < _LARGE_VALUE:
            return VALUE_HEADS[keep_alive] % size + value
        return VALUE_HEADS[keep_alive] % size, value

    def _answer(self, data: bytes, keep_alive: bool) -> None:
        """An answer known now: write it, or queue it behind earlier ones."""
        if self._queue:
            self._queue.append(Slot(self, keep_alive, data=data))
        else:
            self._write(data, keep_alive)

    # -- writing answers ----------------------------------------------------------------
    def flush(self) -> None:
        """Write every ready answer at the head of the queue, in order."""
        queue = self._queue
        # While the peer is not reading, answers wait unevaluated in the queue; otherwise
        # one received chunk of pipelined GETs could produce gigabytes of output.
        while queue and not self._peer_full:
            slot = queue[0]
            data: bytes | tuple[bytes, bytes] | None = slot.data
            if data is None:
                if slot.key is not None:
                    self._deferred -= 1
                    data = self._read(slot.key, slot.keep_alive)
                elif slot.write is not None:
                    self._deferred -= 1
                    op, key, value = slot.write
                    slot.write = None
                    self._submit(slot, op, key, value)
                    break  # answered when its group commits
                else:
                    break  # a write still waiting for its commit group
            queue.popleft()
            self._write(data, slot.keep_alive)
        if self._paused and len(queue) < MAX_QUEUED // 2:
            self._update_reading()

    def _write(self, data: bytes | tuple[bytes, bytes], keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        if type(data) is bytes:
            transport.write(data)
        else:  # a large value, written after its head rather than copied into it
            head, value = cast(tuple[bytes, bytes], data)
            transport.write(head)
            transport.write(value)
        if not keep_alive:
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
