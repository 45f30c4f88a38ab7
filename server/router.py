"""Maps a parsed `Request` to a `Command` or an immediate `Reply` (CONTRACT.md section 2).

| path          | GET        | PUT              | DELETE        | any other method            |
|---------------|------------|------------------|---------------|-----------------------------|
| `/kv/{key}`   | `Get(key)` | `Put(key, body)` | `Delete(key)` | 405 `GET, PUT, DELETE`      |
| `/clear`      | 405        | 405              | `Clear()`     | 405 `DELETE`                |
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

from collections.abc import Callable
from typing import Final, TypeAlias
from urllib.parse import unquote_to_bytes

import httptools

from server.commands import (
    CLEAR,
    CLEAR_METHOD_NOT_ALLOWED,
    KEY_EMPTY,
    KV_METHOD_NOT_ALLOWED,
    NOT_FOUND,
    VALUE_EMPTY,
    Clear,
    Delete,
    Get,
    Put,
    Reply,
)
from server.http import Request

Routed: TypeAlias = Get | Put | Delete | Clear | Reply

_KV_PREFIX: Final = b"/kv/"
_KV_PREFIX_LEN: Final = len(_KV_PREFIX)


def route(req: Request) -> Routed:
    """The command `req` asks for, or the reply it gets without touching the store."""
    target = req.target
    # Fast path: origin-form key route, the shape of nearly every request.
    if target.startswith(_KV_PREFIX):
        return _route_kv(req.method, _key(_strip_query(target)[_KV_PREFIX_LEN:]), req.body)
    path = _path(target)
    if path.startswith(_KV_PREFIX):
        return _route_kv(req.method, _key(path[_KV_PREFIX_LEN:]), req.body)
    if path == b"/clear":
        return CLEAR if req.method == b"DELETE" else CLEAR_METHOD_NOT_ALLOWED
    return NOT_FOUND


def _route_kv(method: bytes, key: bytes, body: bytes) -> Routed:
    handler = _KV_METHODS.get(method)
    if handler is None:
        return KV_METHOD_NOT_ALLOWED
    if not key:
        return KEY_EMPTY
    return handler(key, body)


def _get(key: bytes, body: bytes) -> Routed:
    return Get(key)


def _put(key: bytes, body: bytes) -> Routed:
    return Put(key, body) if body else VALUE_EMPTY


def _delete(key: bytes, body: bytes) -> Routed:
    return Delete(key)


_KV_METHODS: Final[dict[bytes, Callable[[bytes, bytes], Routed]]] = {
    b"GET": _get,
    b"PUT": _put,
    b"DELETE": _delete,
}


def _key(raw: bytes) -> bytes:
    """Percent-decode a key; most keys have no escapes and are returned as they are."""
    return unquote_to_bytes(raw) if b"%" in raw else raw


def _strip_query(target: bytes) -> bytes:
    """The part of an origin-form target before any query or fragment."""
    if b"?" in target or b"#" in target:
        return target.partition(b"?")[0].partition(b"#")[0]
    return target


def _path(target: bytes) -> bytes:
    """The path of any request-target; b"" when it has none (`*`, unparsable)."""
    if target.startswith(b"/"):
        return _strip_query(target)
    try:
        path = httptools.parse_url(target).path
    except httptools.HttpParserInvalidURLError:
        return b""
    return path or b""
