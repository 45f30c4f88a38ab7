"""What a request asks for, as small typed classes (STYLE.md practice 2).

The router turns a `Request` into one `Command`, or into a `Reply` when the request
can be answered without touching the store (every error in CONTRACT.md section 2
that the router can see), or into an `Introspect` when it asks about the server
itself (`/metrics`, `/stats`, `/healthz`). Code downstream dispatches on the class,
never on strings.

`Get`, `Put` and `Delete` are built once per request, so they are plain slots
dataclasses (frozen ones cost twice as much to construct); treat them as immutable.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeAlias

from server.http import TEXT_PLAIN, Headers, encode_response


@dataclass(slots=True)
class Get:
    """Read the value stored under `key`."""

    key: bytes


@dataclass(slots=True)
class Put:
    """Store `value` (non-empty) under `key` (non-empty), replacing any old value."""

    key: bytes
    value: bytes


@dataclass(slots=True)
class Delete:
    """Remove `key`; succeeds whether or not it exists."""

    key: bytes


@dataclass(slots=True, frozen=True)
class Clear:
    """Remove every key."""


Command: TypeAlias = Get | Put | Delete | Clear


class Endpoint(Enum):
    """The introspection paths (outside `/kv/` and `/clear`)."""

    METRICS = b"/metrics"
    """Prometheus text exposition of the server's and the engine's counters."""
    STATS = b"/stats"
    """The same counters as JSON, plus the last recovery report."""
    HEALTHZ = b"/healthz"
    """200 while writes can succeed, else 503 with the reason."""


@dataclass(slots=True, frozen=True)
class Introspect:
    """Report on the server itself; answered from live counters, never cached."""

    endpoint: Endpoint


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


@functools.lru_cache(maxsize=64)
def _encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    return encode_response(
        reply.status,
        reply.body,
        content_type=reply.content_type,
        keep_alive=keep_alive,
        headers=reply.headers,
    )


# The replies named in CONTRACT.md section 2, bodies exactly as written there.
CLEAR: Final = Clear()
KEY_EMPTY: Final = Reply(400, b"key cannot be empty\n")
VALUE_EMPTY: Final = Reply(400, b"value cannot be empty\n")
KEY_NOT_FOUND: Final = Reply(404, b"key not found\n")
NOT_FOUND: Final = Reply(404, b"not found\n")
KV_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET, PUT, DELETE"),)
)
CLEAR_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"DELETE"),)
)
INTROSPECT_METHOD_NOT_ALLOWED: Final = Reply(
    405, b"method not allowed\n", headers=((b"Allow", b"GET"),)
)
INTROSPECTION: Final = {e.value: Introspect(e) for e in Endpoint}
"""The command for each introspection path."""
