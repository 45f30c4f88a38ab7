"""``GET /kv?prefix=&start_after=&end=&limit=&values=&cursor=``: one page of live keys in
byte order, as JSON, from one ``Scan`` (so one consistent state per page).

- ``prefix``: only keys that start with it. ``start_after``: only keys after it.
  ``end``: only keys below it (exclusive). Empty means not given. Values are
  percent-decoded bytes (``+`` is a space, a literal ``+`` is ``%2B``).
- ``limit``: keys per page, 1 to ``SCAN_MAX_LIMIT`` (default 1000). A page stops
  early once its keys (and values) pass ``PAGE_BYTES``, so a page of long keys or large
  values stays a bounded answer; it always holds at least one key.
- ``values``: ``true`` or ``false`` (default false).
- ``cursor``: the ``next`` of the previous page. It carries where that page ended and
  the upper bound of its listing, so ``prefix``, ``start_after`` and ``end`` are not
  needed with it and are ignored; ``limit`` and ``values`` apply to each page.

Answer: ``{"items": [{"key": "k", "value": "v"}, ...], "next": "<cursor>" | null}``,
keys and values as described in ``server/http/jsonbytes.py``; ``next`` is null when
the listing is done. A malformed parameter is a 400 naming it.

The cursor is opaque to clients: the URL-safe base64 (unpadded) of the last key
listed, then ``.`` and that of the listing's upper bound if it has one. Every string of
that form is a position to list from, so a cursor needs no checksum: a made-up one
lists from wherever it says.
"""

from __future__ import annotations

import base64
import functools
import re
from typing import Any, Final

from server.http import jsonbytes
from server.http.query import QueryError, parameters
from server.http.replies import JSON, TEXT_PLAIN, Evaluation, Reply
from storage import SCAN_MAX_LIMIT, OperationResult, Page, Scan

DEFAULT_LIMIT: Final = 1000
PAGE_BYTES: Final = 4 << 20
"""Key (and value) bytes after which a page ends early."""
_PARAMETERS: Final = frozenset(
    {b"prefix", b"start_after", b"end", b"limit", b"values", b"cursor"})
_FLAGS: Final = {b"true": True, b"false": False}
_B64: Final = rb"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?"
_CURSOR: Final = re.compile(_B64 + rb"(?:\." + _B64 + rb")?")
"""Unpadded URL-safe base64 (never a length that leaves one odd character), twice."""


def plan(query: bytes) -> Reply | Evaluation:
    """The ``Scan`` ``query`` asks for, or the reply that refuses it."""
    try:
        scan = scan_of(query)
    except QueryError as exc:
        return Reply(400, f"{exc}\n".encode(), TEXT_PLAIN)
    return Evaluation(scan, functools.partial(render, scan))


def scan_of(query: bytes) -> Scan:
    """The first ``Scan`` of the page ``query`` asks for (QueryError if it is malformed)."""
    found = parameters(query, _PARAMETERS)
    limit = _limit(found.get(b"limit"))
    values = _flag(found.get(b"values"))
    cursor = found.get(b"cursor")
    if cursor is not None:
        after, end = decode_cursor(cursor)
        return Scan(after, end, limit, after=True, values=values)
    prefix = found.get(b"prefix", b"")
    start_after = found.get(b"start_after", b"")
    end = _lower(prefix_end(prefix), found.get(b"end") or None)
    if start_after >= prefix and start_after:
        return Scan(start_after, end, limit, after=True, values=values)
    return Scan(prefix, end, limit, values=values)


def _limit(text: bytes | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= SCAN_MAX_LIMIT:
        raise QueryError(f"invalid limit: 1 to {SCAN_MAX_LIMIT}")
    return int(text)


def _flag(text: bytes | None) -> bool:
    if text is None:
        return False
    flag = _FLAGS.get(text)
    if flag is None:
        raise QueryError("invalid values: true or false")
    return flag


def prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key starting with ``prefix``; None if there is none."""
    stem = prefix.rstrip(b"\xff")
    return stem[:-1] + bytes((stem[-1] + 1,)) if stem else None


def _lower(a: bytes | None, b: bytes | None) -> bytes | None:
    """The lower of two upper bounds (None: no bound)."""
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def encode_cursor(after: bytes, end: bytes | None) -> str:
    """The cursor of a listing that goes on after ``after``, below ``end``."""
    cursor = _b64(after) if end is None else _b64(after) + b"." + _b64(end)
    return cursor.decode("ascii")


def decode_cursor(cursor: bytes) -> tuple[bytes, bytes | None]:
    """``(after, end)`` of a cursor (QueryError if it is not one)."""
    if not _CURSOR.fullmatch(cursor):
        raise QueryError("invalid cursor")
    after, dot, end = cursor.partition(b".")
    return _unb64(after), (_unb64(end) if dot else None)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def render(scan: Scan, result: OperationResult) -> Reply:
    """The JSON page of ``result``, the answer to ``scan``."""
    assert isinstance(result, Page)
    items: list[dict[str, Any]] = []
    size = 0
    more = result.more
    for index, key in enumerate(result.keys):
        if size > PAGE_BYTES:
            more = True
            break
        item: dict[str, Any] = {}
        jsonbytes.put_bytes(item, "key", key)
        size += len(key)
        if scan.values:
            value = result.values[index]
            jsonbytes.put_bytes(item, "value", value)
            size += len(value)
        items.append(item)
    last = result.keys[len(items) - 1] if items else b""
    document = {"items": items, "next": encode_cursor(last, scan.end) if more else None}
    return Reply(200, jsonbytes.dumps(document), JSON)
