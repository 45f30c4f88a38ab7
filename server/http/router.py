"""Maps a parsed `Request` to a command or an immediate `Reply` (CONTRACT.md section 2).

| path          | GET        | PUT              | DELETE        | any other method            |
|---------------|------------|------------------|---------------|-----------------------------|
| `/kv/{key}`   | `Get(key)` | `Put(key, body)` | `Delete(key)` | 405 `GET, PUT, DELETE`      |
| `/clear`      | 405        | 405              | `Clear()`     | 405 `DELETE`                |
| `/metrics`, `/stats`, `/healthz` | `Introspect` | 405 | 405     | 405 `GET`                   |
| anything else | 404 `not found` for every method                                          |

(405 replies name the allowed methods in their `Allow` header.)

Interpretations, where the contract is silent:

- The path is the request-target up to the first `?` or `#`; query and fragment are
  ignored (`DELETE /clear?all=1` clears). An absolute-form target
  (`http://host/kv/a`) is routed by its path. Anything else that is not a path
  (`*`, an unparsable target) is "any other path": 404.
- Routes match the raw path bytes; only the key is percent-decoded, byte-wise and
  without turning `+` into a space (`/kv/a%2Fb` and `/kv/a/b` are the same key, `a/b`;
  `/%6Bv/a` is not a route). Dot segments are not collapsed: `/kv/../x` has key `../x`.
  An invalid escape such as `%zz` stays as it is.
- `/kv` without the trailing slash is not a key route: 404 `not found`. `/kv/` is the
  route with an empty key: GET, PUT and DELETE get 400 `key cannot be empty`, other
  methods 405 (the method is wrong whatever the key).
- For PUT the empty key is reported before the empty value. HEAD and OPTIONS are
  "other methods": 405. A body on GET or DELETE is ignored.
"""

from __future__ import annotations

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
    NOT_FOUND,
    VALUE_EMPTY,
    Reply,
)

Routed: TypeAlias = Get | Put | Delete | Clear | Reply | Introspect

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


def route(req: Request) -> Routed:
    """The command `req` asks for, or the reply it gets without touching the store."""
    target = req.target
    # Fast path: origin-form key route, the shape of nearly every request.
    if target[:_KV_PREFIX_LEN] == _KV_PREFIX:
        key = target[_KV_PREFIX_LEN:]
        # Integer needles: `int in bytes` is a memchr, a bytes needle costs 4x more.
        if _PERCENT in key or _QUESTION in key or _HASH in key:
            key = _key(_strip_query(key))
    else:
        path = _path(target)
        if not path.startswith(_KV_PREFIX):
            return _route_other(req.method, path)
        key = _key(path[_KV_PREFIX_LEN:])
    # Plain comparisons: cheaper per request than a dispatch table and a call.
    method = req.method
    if method == b"GET":
        return Get(key) if key else KEY_EMPTY
    if method == b"PUT":
        if not key:
            return KEY_EMPTY
        return Put(key, req.body) if req.body else VALUE_EMPTY
    if method == b"DELETE":
        return Delete(key) if key else KEY_EMPTY
    return KV_METHOD_NOT_ALLOWED


def _route_other(method: bytes, path: bytes) -> Routed:
    """Every path that is not a key route."""
    if path == b"/clear":
        return CLEAR if method == b"DELETE" else CLEAR_METHOD_NOT_ALLOWED
    introspect = _INTROSPECTION.get(path)
    if introspect is not None:
        return introspect if method == b"GET" else INTROSPECT_METHOD_NOT_ALLOWED
    return NOT_FOUND


def _key(raw: bytes) -> bytes:
    """Percent-decode a key; most keys have no escapes and are returned as they are."""
    return unquote_to_bytes(raw) if _PERCENT in raw else raw


def _strip_query(target: bytes) -> bytes:
    """The part of an origin-form target before any query or fragment."""
    if _QUESTION in target or _HASH in target:
        return target.partition(b"?")[0].partition(b"#")[0]
    return target


def _path(target: bytes) -> bytes:
    """The path of any request-target; b"" when it has none (`*`, unparsable)."""
    if target.startswith(b"/"):
        return _strip_query(target)
    try:
        # Any, not the stub's URL: its `path: bytes` is None for an absolute-form
        # target with no path ("http://h"), and compiled code checks declared types.
        url: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return b""
    path: bytes | None = url.path
    return path or b""
