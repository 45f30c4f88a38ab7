"""Maps a parsed `Request` to a command or an immediate `Reply` (CONTRACT.md section 2).

| path                 | GET        | PUT              | DELETE        | POST  | other |
|----------------------|------------|------------------|---------------|-------|-------|
| `/kv/{key}`          | `Get(key)` | `Put(key, body)` | `Delete(key)` | 405   | 405   |
| `/kv`                | listing    | 405              | 405           | 405   | 405   |
| `/txn`               | 405        | 405              | 405           | txn   | 405   |
| `/clear`             | 405        | 405              | `Clear()`     | 405   | 405   |
| `/metrics`, `/stats`, `/healthz` | `Introspect` | 405  | 405           | 405   | 405   |
| anything else        | 404 `not found` for every method                                 |

(405 replies name the allowed methods in their `Allow` header.)

The rarer requests come out as `Extended` and are completed by interpreted code
(`server/http/service.py`), so that none of it is compiled into, or costs anything
on, the plain GET and PUT:

- `Route.KEY`: a GET, PUT or DELETE of `/kv/{key}` with `If-Match` or `If-None-Match`,
  or a PUT with a query string (`?ttl=`): `server/http/keyops.py`.
- `Route.LIST`: `GET /kv?prefix=&start_after=&end=&limit=&values=&cursor=`:
  `server/http/listing.py`.
- `Route.TXN`: `POST /txn`: `server/http/txn.py`.

Interpretations, where the contract is silent:

- The path is the request-target up to the first `?` or `#`; the query is what
  follows the `?` (up to any `#`). Queries mean something only to a PUT of a key and
  to the listing; elsewhere they are ignored (`DELETE /clear?all=1` clears). An
  absolute-form target (`http://host/kv/a`) is routed by its path and query. Anything
  else that is not a path (`*`, an unparsable target) is "any other path": 404.
- Routes match the raw path bytes; only the key is percent-decoded, byte-wise and
  without turning `+` into a space (`/kv/a%2Fb` and `/kv/a/b` are the same key, `a/b`;
  `/%6Bv/a` is not a route). Dot segments are not collapsed: `/kv/../x` has key `../x`.
  An invalid escape such as `%zz` stays as it is.
- `/kv/` is the route with an empty key: GET, PUT and DELETE get 400 `key cannot be
  empty`, other methods 405 (the method is wrong whatever the key).
- For PUT the empty key is reported before the empty value, and both before the
  query and the preconditions. HEAD and OPTIONS are "other methods": 405. A body on
  GET or DELETE is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, TypeAlias
from urllib.parse import unquote_to_bytes

import httptools

from server.commands import CLEAR, Clear, Delete, Get, Introspect, Put, Report
from server.http.codec import Request
from server.http.replies import (
    CLEAR_METHOD_NOT_ALLOWED,
    INTROSPECT_METHOD_NOT_ALLOWED,
    KEY_EMPTY,
    KV_METHOD_NOT_ALLOWED,
    LIST_METHOD_NOT_ALLOWED,
    NOT_FOUND,
    TXN_METHOD_NOT_ALLOWED,
    VALUE_EMPTY,
    Reply,
)


class Route(IntEnum):
    """The rarer routes, completed by interpreted code (see the module docstring)."""

    KEY = 1
    LIST = 2
    TXN = 3


@dataclass(slots=True, frozen=True)
class Extended:
    """A request on a rarer route. ``key`` is the decoded key (``Route.KEY`` only),
    ``query`` the raw query string (without the ``?``)."""

    route: Route
    key: bytes = b""
    query: bytes = b""


Routed: TypeAlias = Get | Put | Delete | Clear | Reply | Introspect | Extended

_KV_PREFIX: Final = b"/kv/"
_KV_PREFIX_LEN: Final = len(_KV_PREFIX)
_PERCENT: Final = ord("%")
_QUESTION: Final = ord("?")
_HASH: Final = ord("#")
_INTROSPECTION: Final = {
    b"/metrics": Introspect(Report.METRICS),
    b"/stats": Introspect(Report.STATS),
    b"/healthz": Introspect(Report.HEALTH),
}
_LIST: Final = Extended(Route.LIST)
_TXN: Final = Extended(Route.TXN)


def route(req: Request) -> Routed:
    """The command `req` asks for, or the reply it gets without touching the store."""
    target = req.target
    query = b""
    # Fast path: origin-form key route, the shape of nearly every request.
    if target[:_KV_PREFIX_LEN] == _KV_PREFIX:
        key = target[_KV_PREFIX_LEN:]
        # Integer needles: `int in bytes` is a memchr, a bytes needle costs 4x more.
        if _PERCENT in key or _QUESTION in key or _HASH in key:
            raw, query = _split(key)
            key = _key(raw)
    else:
        path, query = _path(target)
        if not path.startswith(_KV_PREFIX):
            return _route_other(req.method, path, query)
        key = _key(path[_KV_PREFIX_LEN:])
    # Plain comparisons: cheaper per request than a dispatch table and a call.
    method = req.method
    if method == b"GET":
        if not key:
            return KEY_EMPTY
        return Get(key) if req.conditions is None else Extended(Route.KEY, key, query)
    if method == b"PUT":
        if not key:
            return KEY_EMPTY
        if not req.body:
            return VALUE_EMPTY
        if req.conditions is None and not query:
            return Put(key, req.body)
        return Extended(Route.KEY, key, query)
    if method == b"DELETE":
        if not key:
            return KEY_EMPTY
        return Delete(key) if req.conditions is None else Extended(Route.KEY, key, query)
    return KV_METHOD_NOT_ALLOWED


def _route_other(method: bytes, path: bytes, query: bytes) -> Routed:
    """Every path that is not a key route."""
    if path == b"/kv":
        if method != b"GET":
            return LIST_METHOD_NOT_ALLOWED
        return Extended(Route.LIST, b"", query) if query else _LIST
    if path == b"/txn":
        return _TXN if method == b"POST" else TXN_METHOD_NOT_ALLOWED
    if path == b"/clear":
        return CLEAR if method == b"DELETE" else CLEAR_METHOD_NOT_ALLOWED
    introspect = _INTROSPECTION.get(path)
    if introspect is not None:
        return introspect if method == b"GET" else INTROSPECT_METHOD_NOT_ALLOWED
    return NOT_FOUND


def _key(raw: bytes) -> bytes:
    """Percent-decode a key; most keys have no escapes and are returned as they are."""
    return unquote_to_bytes(raw) if _PERCENT in raw else raw


def _split(target: bytes) -> tuple[bytes, bytes]:
    """An origin-form target's path and query (any fragment dropped)."""
    if _HASH in target:
        target = target.partition(b"#")[0]
    path, _, query = target.partition(b"?")
    return path, query


def _path(target: bytes) -> tuple[bytes, bytes]:
    """The path and query of any request-target; (b"", b"") when it has no path (`*`,
    unparsable)."""
    if target.startswith(b"/"):
        return _split(target)
    try:
        # Any, not the stub's URL: its `path: bytes` is None for an absolute-form
        # target with no path ("http://h"), and compiled code checks declared types.
        url: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return b"", b""
    path: bytes | None = url.path
    query: bytes | None = url.query
    return path or b"", query or b""
