"""One Redis-protocol connection: bytes to commands (``codec``), commands to plans
(``commands``), plans through the shared pipeline; MULTI/EXEC/WATCH, HELLO and the
connection's own settings.

Everything about order, deferral, batching, backpressure and idle connections is the
pipeline's (``server/pipeline.py``): every complete command of a read is run in order,
the writes of one event-loop iteration share a commit group, and a read behind this
connection's own pending write waits for it. A malformed stream is answered with
``-ERR Protocol error: ...`` and the connection is closed, as Redis does.

EXEC is one engine transaction (``Txn(independent=True)``), decided in commit order:
each queued command is one step (a nested transaction for a conditional write), a
command that fails at run time fails alone (Redis's semantics), and the effects of all
the others are in one log frame. WATCH registers the connection (its client id) as a
watcher of the keys, in commit order; any write that touches one of them afterwards
marks it, as Redis's touchWatchedKey does, and EXEC's condition is that it is not
marked (``Check.UNTOUCHED``). EXEC, DISCARD, UNWATCH and closing the connection end
the watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from server.commands import Clear, Evaluate, Get, Put
from server.pipeline import Pipeline, Slot
from server.resp import admin
from server.resp.codec import (
    OK,
    QUEUED,
    ProtocolError,
    RespParser,
    array,
    bulk,
    error,
    null,
    null_array,
)
from server.resp.commands import (
    TABLE,
    Context,
    live_entry,
    step_result_error,
    unknown_command,
    wrong_arity,
)
from server.resp.plans import Change, Compute, Fast, Listing, Lookup, Now, Plan, Session
from server.resp.replies import STORE_ANSWERS, evaluated
from server.resp.service import RespService
from storage import (
    Check,
    Compare,
    Flush,
    Inspect,
    InvalidOperationError,
    Op,
    OperationResult,
    Step,
    Store,
    Txn,
    TxnResult,
    Unwatch,
    Watch,
    check_operation,
)

TOO_MANY_CLIENTS: Final = error("ERR max number of clients reached")
EXECABORT: Final = error("EXECABORT Transaction discarded because of previous errors.")
_IN_MULTI_ONLY_NOW: Final = frozenset({"exec", "discard", "multi", "watch", "quit"})
"""Connection commands that act at once inside MULTI instead of being queued."""


class RespConnection(Pipeline):
    """asyncio protocol for one Redis client connection (and its ``Context``)."""

    __slots__ = ("_dirty", "_parser", "_queued", "_watched", "client_id", "expires", "lib_name",
                 "lib_ver", "max_value_bytes", "name", "resp3", "service", "values")

    def __init__(self, service: RespService) -> None:
        super().__init__(service.state, service.batch, service.counters)
        self.service = service
        config = service.state.config
        self._parser = RespParser(max_bulk=config.max_value_bytes)
        self.max_value_bytes = config.max_value_bytes
        self.values = service.values
        self.expires = service.state.expires
        self.resp3 = False
        self.client_id = service.next_id()
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self._queued: list[Plan] | None = None
        """Inside MULTI: the commands queued so far."""
        self._dirty = False
        """Inside MULTI: a command could not be queued, so EXEC will abort."""
        self._watched: set[bytes] = set()
        """Keys WATCHed since the last EXEC, DISCARD or UNWATCH."""

    def now_ms(self) -> int:
        return self.service.state.now_ms()

    # -- Pipeline -----------------------------------------------------------------------
    def received(self, data: bytes) -> None:
        items = self._parser.feed(data)
        corked = len(items) > 1  # pipelined: the answers ready now go out in one write
        if corked:
            self.cork()
        for item in items:
            if type(item) is list:
                self._command(item)
            else:
                assert isinstance(item, ProtocolError)
                self.service.count_error("protocol")
                self.answer(error(f"ERR {item.message}"), close=True)
                break
        if corked:
            self.uncork()

    def over_limit(self) -> bytes:
        return TOO_MANY_CLIENTS

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.service.open.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.open.discard(self)
        self.unwatch()  # the engine forgets this watcher (nobody hears the answer)
        super().connection_lost(exc)

    def describe(self) -> bytes:
        """This connection as a line of CLIENT INFO / CLIENT LIST."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        multi = -1 if self._queued is None else len(self._queued)
        return (b"id=%d addr=%s laddr=%s name=%s db=0 multi=%d watch=%d resp=%d "
                b"lib-name=%s lib-ver=%s\n" % (
                    self.client_id, _address(peer), _address(local), self.name, multi,
                    len(self._watched), 3 if self.resp3 else 2, self.lib_name, self.lib_ver))

    # -- commands -----------------------------------------------------------------------
    def _command(self, args: list[bytes]) -> None:
        name = args[0].lower()
        if self._queued is None and len(args) <= 3:
            # GET and a plain SET, the common commands, go straight to the pipeline.
            if name == b"get" and len(args) == 2:
                self.service.count("get")
                self.execute(Get(args[1]), STORE_ANSWERS[self.resp3])
                return
            if name == b"set" and len(args) == 3 and len(args[2]) <= self.max_value_bytes:
                self.service.count("set")
                self.execute(Put(args[1], args[2]), STORE_ANSWERS[self.resp3])
                return
        spec = TABLE.get(name)
        if spec is None:
            plan: Plan = unknown_command(args)
        elif len(args) != spec.arity if spec.arity >= 0 else len(args) < -spec.arity:
            plan = wrong_arity(spec.name)
            if spec.name == "exec":  # Redis discards the transaction, in MULTI or not
                self._queued, self._dirty = None, False
                self.service.count_error("exec")
                self.unwatch(error("EXECABORT Transaction discarded because of: wrong number "
                                   "of arguments for 'exec' command"))
                return
        elif spec.handler is None:
            plan = Session(spec.name, args)
        else:
            plan = spec.handler(self, args)
        label = spec.name if spec is not None else "unknown"
        self.service.count(label)
        if self._queued is not None and not (type(plan) is Session
                                             and plan.name in _IN_MULTI_ONLY_NOW):
            self._enqueue(label, plan)
            return
        self._run(label, plan)

    def _run(self, label: str, plan: Plan) -> None:
        kind = type(plan)
        if kind is Fast:
            self.execute(plan.command, STORE_ANSWERS[self.resp3])  # type: ignore[union-attr]
        elif kind is Now:
            if plan.error:  # type: ignore[union-attr]
                self.service.count_error(label)
            self.answer(plan.reply, close=False)  # type: ignore[union-attr]
        elif kind is Lookup:
            self._lookup(plan)  # type: ignore[arg-type]
        elif kind is Change or kind is Listing:
            self._run_operation(label, plan)  # type: ignore[arg-type]
        elif kind is Compute:
            self.compute(plan.read)  # type: ignore[union-attr]
        else:
            self._session(label, plan)  # type: ignore[arg-type]

    def _lookup(self, plan: Lookup) -> None:
        key, render = plan.key, plan.render

        def read() -> bytes:
            now = self.now_ms()
            return render(*live_entry(self, key, now), now)
        self.compute(read)

    def _run_operation(self, label: str, plan: Change | Listing,
                  render: Callable[[OperationResult], bytes] | None = None) -> None:
        operation = plan.txn if type(plan) is Change else plan.scan  # type: ignore[union-attr]
        try:
            check_operation(operation)
        except InvalidOperationError as exc:
            self.service.count_error(label)
            self.answer(error(f"ERR {exc}"), close=False)
            return
        self.execute(Evaluate(operation),
                     evaluated(render or plan.render,  # type: ignore[arg-type]
                               lambda: self.service.count_error(label)))

    # -- MULTI / EXEC -------------------------------------------------------------------
    def _enqueue(self, label: str, plan: Plan) -> None:
        assert self._queued is not None
        if type(plan) is Now and plan.aborts:
            self._dirty = True
            self.service.count_error(label)
            self.answer(plan.reply, close=False)
            return
        if type(plan) is Listing:
            self._dirty = True
            self.service.count_error(label)
            self.answer(error(f"ERR {label.upper()} is not supported inside MULTI"), False)
            return
        self._queued.append(plan)
        self.answer(QUEUED, close=False)

    def _exec(self) -> None:
        queued, dirty, watched = self._queued, self._dirty, bool(self._watched)
        self._queued, self._dirty = None, False
        if queued is None:
            self.answer(error("ERR EXEC without MULTI"), close=False)
            return
        if dirty:
            self.service.count_error("exec")
            self.unwatch(EXECABORT)
            return
        self._watched = set()
        steps: list[Step] = []
        renders: list[Callable[[object], bytes]] = []
        for plan in queued:
            self._step_of(plan, steps, renders)
        compare: tuple[Compare, ...] = ()
        if watched:
            compare = (Compare(b"", Check.UNTOUCHED, b"%d" % self.client_id),)
            steps.append(Unwatch(self.client_id))
        resp3 = self.resp3

        def render(result: OperationResult) -> bytes:
            assert isinstance(result, TxnResult)
            if not result.succeeded:
                return null_array(resp3)
            results = iter(result.results)
            replies = []
            for one in renders:
                replies.append(one(results))
            return array(replies)
        txn = Txn(compare, tuple(steps), tuple(steps[-1:]) if watched else (), independent=True)
        self._run_operation("exec", Change(txn, lambda r: b""), render)

    def _step_of(self, plan: Plan, steps: list[Step],
                 renders: list[Callable[[object], bytes]]) -> None:
        """Add ``plan``'s step (if any) and how to render its reply from the results."""
        kind = type(plan)
        resp3 = self.resp3
        if kind is Now:
            reply = plan.reply  # type: ignore[union-attr]
            renders.append(lambda results: reply)
            return
        if kind is Compute:
            read = plan.read  # type: ignore[union-attr]
            renders.append(lambda results: read())
            return
        if kind is Session and plan.name in ("flushall", "flushdb"):  # type: ignore[union-attr]
            steps.append(Flush())
            renders.append(lambda results: (next(results), OK)[1])  # type: ignore
            return
        if kind is Session:
            session = cast(Session, plan)
            renders.append(lambda results: admin.reply(self, session.name, session.args))
            return
        if kind is Fast:
            command = plan.command  # type: ignore[union-attr]
            if type(command) is Get:
                steps.append(Inspect(command.key))
                renders.append(lambda results: _got(next(results), resp3))  # type: ignore
            elif type(command) is Put:
                steps.append(Store(command.key, command.value))
                renders.append(lambda results: (next(results), OK)[1])  # type: ignore
            else:
                assert type(command) is Clear
                steps.append(Flush())
                renders.append(lambda results: (next(results), OK)[1])  # type: ignore
            return
        if kind is Lookup:
            lookup: Lookup = plan  # type: ignore[assignment]
            steps.append(Inspect(lookup.key))

            def read(results: object) -> bytes:
                found = next(results)  # type: ignore[call-overload]
                failed = step_result_error(found)
                if failed is not None:
                    return failed
                value, deadline = found if found is not None else (None, None)
                return lookup.render(value, deadline, self.now_ms())
            renders.append(read)
            return
        change: Change = plan  # type: ignore[assignment]
        steps.append(change.txn)

        def changed(results: object) -> bytes:
            found = next(results)  # type: ignore[call-overload]
            failed = step_result_error(found) if not isinstance(found, TxnResult) else None
            return failed if failed is not None else change.render(found)
        renders.append(changed)

    # -- connection-level commands ------------------------------------------------------
    def _session(self, label: str, plan: Session) -> None:
        name = plan.name
        if name == "multi":
            if self._queued is not None:
                self.service.count_error(label)
                self.answer(error("ERR MULTI calls can not be nested"), close=False)
            else:
                self._queued, self._dirty = [], False
                self.answer(OK, close=False)
        elif name == "exec":
            self._exec()
        elif name == "discard":
            if self._queued is None:
                self.service.count_error(label)
                self.answer(error("ERR DISCARD without MULTI"), close=False)
            else:
                self._queued, self._dirty = None, False
                self.unwatch(OK)
        elif name == "watch":
            if self._queued is not None:
                self.service.count_error(label)
                self.answer(error("ERR WATCH inside MULTI is not allowed"), close=False)
            else:
                fresh = [k for k in plan.args[1:] if k not in self._watched]
                self._watched.update(fresh)
                self._run_operation(label, Change(
                    Txn((), tuple(Watch(k, self.client_id) for k in dict.fromkeys(fresh))),
                    lambda r: OK))
        elif name == "unwatch":
            self.unwatch(OK)
        elif name == "quit":
            self.answer(OK, close=True)
        elif name in ("flushall", "flushdb"):
            if len(plan.args) > 2 or (len(plan.args) == 2
                                      and plan.args[1].upper() not in (b"ASYNC", b"SYNC")):
                self.service.count_error(label)
                self.answer(error("ERR syntax error"), close=False)
            else:
                self.execute(Clear(), STORE_ANSWERS[self.resp3])
        else:
            reply = admin.reply(self, plan.name, plan.args)
            if reply[:1] == b"-":
                self.service.count_error(label)
            self.answer(reply, close=False)

    def unwatch(self, reply: bytes | None = None) -> None:
        """End the watch (UNWATCH, DISCARD, EXEC): the engine forgets this watcher in
        commit order; ``reply`` is sent once it has (None: no reply)."""
        if not self._watched:
            if reply is not None:
                self.answer(reply, close=False)
            return
        self._watched = set()
        operation = Change(Txn((), (Unwatch(self.client_id),)), lambda r: reply or b"")
        if reply is not None:
            self._run_operation("unwatch", operation)
            return
        # The connection is gone: hand the operation over without a place in its queue.
        batch = self.service.batch
        slot = Slot(self, evaluated(lambda r: b"", lambda: None))
        batch.pending.append((Op.EVALUATE, b"", operation.txn, slot))
        if len(batch.pending) == 1:
            batch.schedule()


def _address(address: object) -> bytes:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}".encode()
    return b""


def _got(found: object, resp3: bool) -> bytes:
    failed = step_result_error(found)
    if failed is not None:
        return failed
    if found is None:
        return null(resp3)
    return bulk(found[0])  # type: ignore[index]


_: type[Context] = RespConnection  # a RespConnection is its commands' Context
