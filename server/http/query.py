"""Query strings of the routes that take parameters (`PUT /kv/{key}?ttl=`, `GET /kv`),
and the one rule for a time to live, wherever it is given.

A query is `name=value` pairs joined by `&`, percent-decoded byte-wise with `+` as a
space (the HTML form encoding every HTTP client library writes). Names a route does
not know are ignored, as a query string always was; a known name given twice is an
error, because no single meaning can be picked for it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final
from urllib.parse import unquote_to_bytes

TTL_MAX_SECONDS: Final = 10 * 365 * 86_400
"""The longest time to live: ten years of 365 days (315,360,000 s)."""

_NUMBER: Final = re.compile(rb"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A non-negative decimal number, as JSON and every client library write one."""


class QueryError(ValueError):
    """A parameter is malformed; ``str(error)`` is the reason, said to the client."""


def parameters(query: bytes, known: frozenset[bytes]) -> dict[bytes, bytes]:
    """The decoded values of the ``known`` names in ``query``."""
    found: dict[bytes, bytes] = {}
    for pair in query.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name = _decode(raw_name)
        if name not in known:
            continue
        if name in found:
            raise QueryError(f"{name.decode()} given twice")
        found[name] = _decode(raw_value)
    return found


def _decode(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


def ttl_ms_of_text(text: bytes) -> int:
    """A time to live written as decimal seconds (``30``, ``0.25``, ``1e3``), in whole ms."""
    if not _NUMBER.fullmatch(text):
        raise QueryError("invalid ttl")
    return _ttl_ms(Decimal(text.decode("ascii")))


def ttl_ms_of_number(seconds: object) -> int:
    """A time to live given as a JSON number of seconds, in whole ms."""
    if type(seconds) is int:
        return _ttl_ms(Decimal(seconds))
    if type(seconds) is float and math.isfinite(seconds):
        return _ttl_ms(Decimal(repr(seconds)))
    raise QueryError("invalid ttl")


def _ttl_ms(seconds: Decimal) -> int:
    """Rounded up to a whole millisecond, so that any ttl > 0 outlives its request."""
    if not 0 < seconds <= TTL_MAX_SECONDS:
        raise QueryError("invalid ttl")
    return math.ceil(seconds * 1000)
