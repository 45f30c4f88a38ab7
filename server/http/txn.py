"""``POST /txn``: a JSON transaction in the etcd style, evaluated by the committer.

Request (every member optional; ``key_b64``/``value_b64`` wherever a key or value
goes, see ``server/http/jsonbytes.py``)::

    {"compare": [{"key": "k", "absent": true} | {"key": "k", "present": true}
                 | {"key": "k", "etag": "<etag>"} | {"key": "k", "value": "v"}],
     "ops": [{"op": "put", "key": "k", "value": "v", "ttl": 30}
             | {"op": "delete", "key": "k"} | {"op": "incr", "key": "k", "by": 1}
             | {"op": "get", "key": "k"}]}

If every condition holds, the ops run in order, all or nothing, and the answer is
``200 {"succeeded": true, "results": [...]}``, one result per op. A condition that
does not hold: ``412 {"succeeded": false, "failed": {"index": i, "key": "k"}}``. An
op that cannot run (``incr`` of a value that is not a 64-bit integer, or past its
range): ``409 {"error": "...", "index": i}``. In both cases nothing was applied.

Parsing is strict: an unknown member, a duplicate member, a wrong type, an empty key
or value is a 400 naming where it is (``ops[2].by``), so that a typo is never taken
for an omission. More than ``TXN_MAX_STEPS`` conditions and ops together is a 413.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Final

from server.http import jsonbytes
from server.http.jsonbytes import ShapeError
from server.http.query import QueryError, ttl_ms_of_number
from server.http.replies import JSON, TEXT_PLAIN, Evaluation, Reply
from storage import (
    TXN_MAX_STEPS,
    Add,
    Check,
    Compare,
    Fetch,
    OperationResult,
    Remove,
    Step,
    Store,
    Txn,
    TxnResult,
)

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
TOO_LARGE: Final = Reply(413, f"transaction too large: at most {TXN_MAX_STEPS} conditions "
                              "and operations\n".encode())

_CHECKS: Final = {"absent": Check.ABSENT, "present": Check.PRESENT, "etag": Check.ETAG,
                  "value": Check.VALUE, "value_b64": Check.VALUE}
_OP_FIELDS: Final = {
    "put": {"op", "key", "key_b64", "value", "value_b64", "ttl"},
    "delete": {"op", "key", "key_b64"},
    "incr": {"op", "key", "key_b64", "by"},
    "get": {"op", "key", "key_b64"},
}


class TooLarge(ValueError):
    """More conditions and ops than one transaction may hold."""


def plan(body: bytes, now_ms: int) -> Reply | Evaluation:
    """The transaction ``body`` asks for, or the reply that refuses it."""
    try:
        txn = parse(body, now_ms)
    except TooLarge:
        return TOO_LARGE
    except ShapeError as exc:
        return Reply(400, f"invalid transaction: {exc}\n".encode(), TEXT_PLAIN)
    return Evaluation(txn, functools.partial(render, txn))


def parse(body: bytes, now_ms: int) -> Txn:
    """A ``Txn`` from the JSON ``body`` (ShapeError, TooLarge); ``ttl`` counts from ``now_ms``."""
    document = _load(body)
    if type(document) is not dict:
        raise ShapeError("the body is not a JSON object")
    _only(document, {"compare", "ops"}, "the transaction")
    compares = _list(document, "compare")
    ops = _list(document, "ops")
    if len(compares) + len(ops) > TXN_MAX_STEPS:
        raise TooLarge
    return Txn(tuple(_compare(c, f"compare[{i}]") for i, c in enumerate(compares)),
               tuple(_op(o, f"ops[{i}]", now_ms) for i, o in enumerate(ops)))


def _load(body: bytes) -> object:
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise ShapeError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and the hooks'
        raise ShapeError(f"not JSON ({exc})") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a member is given twice")
    return document


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ShapeError(f"{where}: unknown member {unknown[0]!r}")


def _list(document: dict[str, Any], name: str) -> list[Any]:
    items = document.get(name, [])
    if type(items) is not list:
        raise ShapeError(f"{name}: not a list")
    return items


def _object(item: object, where: str) -> dict[str, Any]:
    if type(item) is not dict:
        raise ShapeError(f"{where}: not an object")
    return item


def _key(obj: dict[str, Any], where: str) -> bytes:
    key = jsonbytes.take_bytes(obj, "key", where)
    if not key:
        raise ShapeError(f"{where}: key missing or empty")
    return key


def _compare(item: object, where: str) -> Compare:
    obj = _object(item, where)
    _only(obj, {"key", "key_b64", *_CHECKS}, where)
    key = _key(obj, where)
    checks = [name for name in _CHECKS if name in obj]
    if len(checks) != 1:
        raise ShapeError(f"{where}: needs exactly one of absent, present, etag, value")
    check = _CHECKS[checks[0]]
    if check is Check.ABSENT or check is Check.PRESENT:
        if obj[checks[0]] is not True:
            raise ShapeError(f"{where}.{checks[0]}: must be true")
        return Compare(key, check)
    if check is Check.ETAG:
        return Compare(key, check, _etag(obj["etag"], where))
    value = jsonbytes.take_bytes(obj, "value", where)
    assert value is not None  # one of value, value_b64 is there
    return Compare(key, check, value)


def _etag(tag: object, where: str) -> bytes:
    """An ETag as sent (quoted) or bare."""
    if type(tag) is not str or not tag.isascii():
        raise ShapeError(f"{where}.etag: not an ASCII string")
    if len(tag) >= 2 and tag[0] == tag[-1] == '"':
        tag = tag[1:-1]
    return tag.encode("ascii")


def _op(item: object, where: str, now_ms: int) -> Step:
    obj = _object(item, where)
    kind = obj.get("op")
    if type(kind) is not str or kind not in _OP_FIELDS:
        raise ShapeError(f"{where}.op: must be one of put, delete, incr, get")
    _only(obj, _OP_FIELDS[kind], where)
    key = _key(obj, where)
    if kind == "put":
        return _put(obj, key, where, now_ms)
    if kind == "delete":
        return Remove(key)
    if kind == "incr":
        return Add(key, _by(obj.get("by", 1), where))
    return Fetch(key)


def _put(obj: dict[str, Any], key: bytes, where: str, now_ms: int) -> Store:
    value = jsonbytes.take_bytes(obj, "value", where)
    if not value:
        raise ShapeError(f"{where}: value missing or empty")
    if "ttl" not in obj:
        return Store(key, value)
    try:
        return Store(key, value, now_ms + ttl_ms_of_number(obj["ttl"]))
    except QueryError:
        raise ShapeError(f"{where}.ttl: must be a number of seconds > 0, at most ten "
                         "years") from None


def _by(by: object, where: str) -> int:
    if type(by) is not int or not INT64_MIN <= by <= INT64_MAX:
        raise ShapeError(f"{where}.by: must be a 64-bit integer")
    return by


# -- the answer ------------------------------------------------------------------------


def render(txn: Txn, result: OperationResult) -> Reply:
    """The reply to ``txn``'s result (see the module docstring)."""
    assert isinstance(result, TxnResult)
    if result.error is not None:
        return _json(409, {"error": result.error, "index": result.error_step})
    if not result.succeeded:
        failed: dict[str, Any] = {"index": result.failed}
        if result.failed is not None:
            jsonbytes.put_bytes(failed, "key", txn.compare[result.failed].key)
        return _json(412, {"succeeded": False, "failed": failed})
    results = [_RESULTS[type(step)](outcome)
               for step, outcome in zip(txn.then, result.results, strict=True)]
    return _json(200, {"succeeded": True, "results": results})


def _json(status: int, document: object) -> Reply:
    return Reply(status, jsonbytes.dumps(document), JSON)


def _fetched(value: object) -> dict[str, Any]:
    result: dict[str, Any] = {"op": "get", "found": value is not None}
    if isinstance(value, bytes):
        jsonbytes.put_bytes(result, "value", value)
    return result


_RESULTS: Final[dict[type, Callable[[object], dict[str, Any]]]] = {
    Store: lambda _: {"op": "put"},
    Remove: lambda existed: {"op": "delete", "deleted": existed},
    Add: lambda total: {"op": "incr", "value": total},
    Fetch: _fetched,
}
