"""One HTTP/1.1 connection: bytes to requests (``codec``), requests to commands
(``router``), commands through the shared pipeline, answers from ``replies``.

Everything about order, deferral, batching, backpressure and idle connections is the
pipeline's (``server/pipeline.py``); this module adds what is HTTP's own: keep-alive
(a request without it is answered and the connection closed), ``100 Continue``, and
a ``400``/``413``/``431`` that ends a connection whose bytes cannot be parsed. The
rarer routes (``router.Extended``) are handed to the service, which runs them through
the same pipeline.
"""

from __future__ import annotations

from typing import Final, cast

from server.commands import Introspect
from server.http.codec import (
    CONTINUE_RESPONSE,
    ContinueExpected,
    ProtocolError,
    Request,
    RequestParser,
)
from server.http.replies import (
    STORE_ANSWERS,
    TOO_MANY_CONNECTIONS,
    Reply,
    error_response,
)
from server.http.router import Extended, route
from server.http.service import HttpService
from server.pipeline import Pipeline

_STORE_ANSWERS: Final = STORE_ANSWERS  # a module Final: a C static when compiled


class HttpConnection(Pipeline):
    """asyncio protocol for one HTTP client connection."""

    __slots__ = ("_parser", "_service")

    def __init__(self, service: HttpService) -> None:
        super().__init__(service.state, service.batch, service.counters)
        self._service = service
        config = service.state.config
        self._parser = RequestParser(max_header_bytes=config.max_header_bytes,
                                     max_body_bytes=config.max_value_bytes)

    def received(self, data: bytes) -> None:
        for event in self._parser.feed(data):
            kind = type(event)
            if kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is ContinueExpected:
                self.answer(CONTINUE_RESPONSE, close=False)
            else:
                assert isinstance(event, ProtocolError)
                self._service.count(b"", event.status)
                self.answer(error_response(event), close=True)

    def over_limit(self) -> bytes:
        return TOO_MANY_CONNECTIONS

    def _on_request(self, req: Request) -> None:
        routed = route(req)
        keep_alive = req.keep_alive and not self._closing
        if self.execute(routed, _STORE_ANSWERS[keep_alive]):
            return
        if type(routed) is Extended:
            # A rarer route: the service completes it, in interpreted code.
            self._service.extended(self, routed, req, keep_alive)
            return
        # A Reply or an Introspect: answered by the service, and counted there.
        other = cast(Reply | Introspect, routed)
        self.answer(self._service.reply(req.method, other, keep_alive), close=not keep_alive)
