"""Keys and values in the JSON of the listing and of transactions.

Keys and values are bytes; JSON strings are Unicode. A member ``"key"`` (``"value"``)
holds bytes that are valid UTF-8, as a string; any other bytes go in ``"key_b64"``
(``"value_b64"``) as their standard base64 (RFC 4648 section 4, with padding). Clients
may use either form for any bytes they send; walkv sends the string form whenever it
can.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final

BASE64: Final = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
"""Standard base64 with exactly the padding it needs (RFC 4648 section 4)."""


class ShapeError(ValueError):
    """A JSON document does not have the shape asked for; ``str(error)`` says where."""


def put_bytes(obj: dict[str, Any], name: str, data: bytes) -> None:
    """Set ``obj[name]`` to ``data`` as a string, or ``obj[name + "_b64"]`` to its base64."""
    try:
        obj[name] = data.decode("utf-8")
    except UnicodeDecodeError:
        obj[name + "_b64"] = base64.b64encode(data).decode("ascii")


def take_bytes(obj: dict[str, Any], name: str, where: str) -> bytes | None:
    """The bytes in ``obj[name]`` or ``obj[name + "_b64"]``; None if neither is there."""
    b64_name = name + "_b64"
    if name in obj and b64_name in obj:
        raise ShapeError(f"{where}: {name} and {b64_name} both given")
    for member, decode in ((name, _utf8), (b64_name, _base64)):
        if member in obj:
            text = obj[member]
            if type(text) is not str:
                raise ShapeError(f"{where}.{member}: not a string")
            return decode(text, f"{where}.{member}")
    return None


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape ("\ud800")
        raise ShapeError(f"{where}: not UTF-8 (use the _b64 form)") from None


def _base64(text: str, where: str) -> bytes:
    if not BASE64.fullmatch(text):
        raise ShapeError(f"{where}: not base64")
    return base64.b64decode(text)


def dumps(document: object) -> bytes:
    """``document`` as compact UTF-8 JSON and a newline."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
