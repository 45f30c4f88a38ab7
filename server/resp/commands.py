"""Redis's string and key commands: arguments checked as Redis 7 checks them, turned
into plans (``server/resp/plans.py``) over the engine's operations (``storage.ops``).

Each handler takes the connection's ``Context`` and the command's arguments (the name
first) and returns a plan; the arity was checked already (``TABLE``). Error strings are
Redis's own. Nothing here talks to a socket or waits for the disk.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from server.commands import Get, Put
from server.resp.codec import (
    OK,
    array,
    bulk,
    error,
    integer,
    null,
    simple,
)
from server.resp.plans import Change, Compute, Fast, Listing, Lookup, Now, Plan
from storage import (
    SCAN_MAX_LIMIT,
    Add,
    AddFloat,
    Append,
    Check,
    Compare,
    Expire,
    Fetch,
    Page,
    Remove,
    Rename,
    Scan,
    SetRange,
    StepFailure,
    Store,
    Txn,
    TxnResult,
    When,
)

INT64_MAX: Final = (1 << 63) - 1
INT64_MIN: Final = -(1 << 63)


class Context(Protocol):
    """What a handler may know about its connection and server."""

    resp3: bool
    max_value_bytes: int
    values: dict[bytes, bytes]
    expires: dict[bytes, int]

    def now_ms(self) -> int: ...


# -- errors --------------------------------------------------------------------------------
SYNTAX: Final = Now(error("ERR syntax error"), error=True)
NOT_INTEGER: Final = Now(error("ERR value is not an integer or out of range"), error=True)
NOT_FLOAT: Final = Now(error("ERR value is not a valid float"), error=True)


def fail(message: str) -> Now:
    """An error reply (``message`` with its code, e.g. ``ERR ...``)."""
    return Now(error(message), error=True)


def wrong_arity(name: str) -> Now:
    return Now(error(f"ERR wrong number of arguments for '{name}' command"), error=True,
               aborts=True)


def unknown_command(args: Sequence[bytes]) -> Now:
    """Redis's reply to a command it does not know, with the first arguments."""
    shown = ""
    for arg in args[1:]:
        if len(shown) >= 128:
            break
        shown += f"'{arg[:128 - len(shown)].decode('utf-8', 'replace')}' "
    name = args[0][:128].decode("utf-8", "replace")
    return Now(error(f"ERR unknown command '{name}', with args beginning with: {shown}"),
               error=True, aborts=True)


def step_error(message: str) -> bytes:
    """The reply to a step the engine could not run (its message is Redis's wording)."""
    return error(f"ERR {message}")


def parse_int(arg: bytes) -> int | None:
    """Redis's string2ll: a canonical decimal 64-bit integer, else None."""
    if not arg or len(arg) > 20:
        return None
    digits = arg[1:] if arg[:1] == b"-" else arg
    if not digits.isdigit() or not digits.isascii():
        return None
    if digits[:1] == b"0" and arg != b"0":
        return None
    number = int(arg)
    return number if INT64_MIN <= number <= INT64_MAX else None


def _expire_error(name: str) -> Now:
    return fail(f"ERR invalid expire time in '{name}' command")


# -- reading a key -------------------------------------------------------------------------
def live_entry(ctx: Context, key: bytes, now: int) -> tuple[bytes | None, int | None]:
    """(value, deadline) of ``key`` in the committed table at ``now``; (None, None) if
    absent or expired."""
    value = ctx.values.get(key)
    if value is None:
        return None, None
    deadline = ctx.expires.get(key)
    if deadline is not None and deadline <= now:
        return None, None
    return value, deadline


def get(ctx: Context, args: list[bytes]) -> Plan:
    return Fast(Get(args[1]))


def strlen(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], lambda value, _d, _n: integer(0 if value is None else len(value)))


def type_(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], lambda value, _d, _n: simple(b"none" if value is None else b"string"))


def _ttl_reply(ms: bool, absolute: bool) -> Callable[[bytes | None, int | None, int], bytes]:
    def render(value: bytes | None, deadline: int | None, now: int) -> bytes:
        if value is None:
            return integer(-2)
        if deadline is None:
            return integer(-1)
        left = deadline if absolute else max(deadline - now, 0)
        return integer(left if ms else (left + 500) // 1000)
    return render


def ttl(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], _ttl_reply(ms=False, absolute=False))


def pttl(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], _ttl_reply(ms=True, absolute=False))


def expiretime(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], _ttl_reply(ms=False, absolute=True))


def pexpiretime(ctx: Context, args: list[bytes]) -> Plan:
    return Lookup(args[1], _ttl_reply(ms=True, absolute=True))


def getrange(ctx: Context, args: list[bytes]) -> Plan:
    start, end = parse_int(args[2]), parse_int(args[3])
    if start is None or end is None:
        return NOT_INTEGER
    return Lookup(args[1], lambda value, _d, _n: bulk(_range(value or b"", start, end)))


def _range(value: bytes, start: int, end: int) -> bytes:
    """Redis's GETRANGE: inclusive offsets, negative ones from the end."""
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = size + start
    if end < 0:
        end = size + end
    start, end = max(start, 0), max(end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return b""
    return value[start:end + 1]


def exists(ctx: Context, args: list[bytes]) -> Plan:
    if len(args) == 2:
        return Lookup(args[1], lambda value, _d, _n: integer(0 if value is None else 1))
    # Several keys: counted in commit order, so the count is of one state.
    return Change(Txn((), tuple(Fetch(k) for k in args[1:])),
                  lambda r: integer(sum(v is not None for v in r.results)))


def mget(ctx: Context, args: list[bytes]) -> Plan:
    resp3 = ctx.resp3
    return Change(Txn((), tuple(Fetch(k) for k in args[1:])),
                  lambda r: array([null(resp3) if v is None else bulk(v)  # type: ignore[arg-type]
                                   for v in r.results]))


# -- writing -------------------------------------------------------------------------------
@dataclass(slots=True)
class _SetOptions:
    condition: Check | None = None
    get: bool = False
    deadline: int | None = None
    keep_ttl: bool = False


def _deadline(ctx: Context, name: str, arg: bytes, unit_ms: int,
              absolute: bool) -> int | Now:
    """Redis's getExpireMillisecondsOrReply: a positive time, as an absolute deadline."""
    number = parse_int(arg)
    if number is None:
        return NOT_INTEGER
    if number <= 0 or (unit_ms == 1000 and number > INT64_MAX // 1000):
        return _expire_error(name)
    ms = number * unit_ms
    if not absolute:
        ms += ctx.now_ms()
        if ms > INT64_MAX:
            return _expire_error(name)
    return ms


_EXPIRY_OPTIONS: Final = {b"EX": (1000, False), b"PX": (1, False), b"EXAT": (1000, True),
                          b"PXAT": (1, True)}


def _expiry_options(args: list[bytes], start: int, persist: bytes | None,
                    ) -> tuple[bytes | None, bytes | None, set[bytes]] | None:
    """Redis's option loop for SET and GETEX: (expiry word, its argument, other flags),
    or None for a syntax error. A repeated option is allowed (the last argument wins);
    two kinds of expiry, or an expiry with ``persist`` (KEEPTTL, PERSIST), are not."""
    word: bytes | None = None
    value: bytes | None = None
    flags: set[bytes] = set()
    i = start
    while i < len(args):
        option = args[i].upper()
        if option in _EXPIRY_OPTIONS and word in (None, option) and persist not in flags \
                and i + 1 < len(args):
            word, value = option, args[i + 1]
            i += 1
        elif option == persist and word is None:
            flags.add(option)
        elif option in (b"NX", b"XX", b"GET") and persist == b"KEEPTTL":
            if {b"NX", b"XX"} <= flags | {option}:
                return None
            flags.add(option)
        else:
            return None
        i += 1
    return word, value, flags


def _set_options(ctx: Context, args: list[bytes]) -> _SetOptions | Now:
    parsed = _expiry_options(args, 3, b"KEEPTTL")
    if parsed is None:
        return SYNTAX
    word, value, flags = parsed
    options = _SetOptions(get=b"GET" in flags, keep_ttl=b"KEEPTTL" in flags)
    if b"NX" in flags:
        options.condition = Check.ABSENT
    elif b"XX" in flags:
        options.condition = Check.PRESENT
    if word is not None and value is not None:
        unit, absolute = _EXPIRY_OPTIONS[word]
        deadline = _deadline(ctx, "set", value, unit, absolute)
        if isinstance(deadline, Now):
            return deadline
        options.deadline = deadline
    return options


def set_(ctx: Context, args: list[bytes]) -> Plan:
    key, value = args[1], args[2]
    if len(value) > ctx.max_value_bytes:
        return _too_big()
    if len(args) == 3:
        return Fast(Put(key, value))
    options = _set_options(ctx, args)
    if isinstance(options, Now):
        return options
    store = Store(key, value, options.deadline, options.keep_ttl)
    compare = () if options.condition is None else (Compare(key, options.condition),)
    otherwise = (Fetch(key),) if options.get else ()
    resp3 = ctx.resp3

    def render(result: TxnResult) -> bytes:
        if options.get:
            old = result.results[0]
            return null(resp3) if old is None else bulk(old)  # type: ignore[arg-type]
        return OK if result.succeeded else null(resp3)
    return Change(Txn(compare, (store,), otherwise), render)


def _too_big() -> Now:
    return fail("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


def setnx(ctx: Context, args: list[bytes]) -> Plan:
    key = args[1]
    return Change(Txn((Compare(key, Check.ABSENT),), (Store(key, args[2]),)),
                  lambda r: integer(int(r.succeeded)))


def _setex(ctx: Context, args: list[bytes], unit: int) -> Plan:
    name = "setex" if unit == 1000 else "psetex"
    deadline = _deadline(ctx, name, args[2], unit, absolute=False)
    if isinstance(deadline, Now):
        return deadline
    return Change(Txn((), (Store(args[1], args[3], deadline),)), lambda r: OK)


def setex(ctx: Context, args: list[bytes]) -> Plan:
    return _setex(ctx, args, 1000)


def psetex(ctx: Context, args: list[bytes]) -> Plan:
    return _setex(ctx, args, 1)


def _old_value(resp3: bool) -> Callable[[TxnResult], bytes]:
    def render(result: TxnResult) -> bytes:
        old = result.results[0]
        return null(resp3) if old is None else bulk(old)  # type: ignore[arg-type]
    return render


def getset(ctx: Context, args: list[bytes]) -> Plan:
    return Change(Txn((), (Store(args[1], args[2]),)), _old_value(ctx.resp3))


def getdel(ctx: Context, args: list[bytes]) -> Plan:
    return Change(Txn((), (Fetch(args[1]), Remove(args[1]))), _old_value(ctx.resp3))


def getex(ctx: Context, args: list[bytes]) -> Plan:
    key, resp3 = args[1], ctx.resp3
    parsed = _expiry_options(args, 2, b"PERSIST")
    if parsed is None:
        return SYNTAX
    word, value, flags = parsed
    if word is None and not flags:
        return Lookup(key, lambda found, _d, _n: null(resp3) if found is None else bulk(found))
    deadline: int | None = None
    if word is not None and value is not None:
        unit, absolute = _EXPIRY_OPTIONS[word]
        checked = _deadline(ctx, "getex", value, unit, absolute)
        if isinstance(checked, Now):
            # Redis looks the key up first: a missing key is nil whatever the time.
            failed = checked.reply
            return Lookup(key, lambda found, _d, _n: null(resp3) if found is None else failed)
        deadline = checked
    return Change(Txn((), (Fetch(key), Expire(key, deadline))), _old_value(resp3))


def mset(ctx: Context, args: list[bytes]) -> Plan:
    if len(args) % 2 == 0:
        return wrong_arity(args[0].decode("ascii", "replace").lower())
    stores = tuple(Store(args[i], args[i + 1]) for i in range(1, len(args), 2))
    if any(len(s.value) > ctx.max_value_bytes for s in stores):
        return _too_big()
    return Change(Txn((), stores), lambda r: OK)


def msetnx(ctx: Context, args: list[bytes]) -> Plan:
    if len(args) % 2 == 0:
        return wrong_arity("msetnx")
    stores = tuple(Store(args[i], args[i + 1]) for i in range(1, len(args), 2))
    if any(len(s.value) > ctx.max_value_bytes for s in stores):
        return _too_big()
    compare = tuple(Compare(s.key, Check.ABSENT) for s in stores)
    return Change(Txn(compare, stores), lambda r: integer(int(r.succeeded)))


def _counter(result: TxnResult) -> bytes:
    if result.error is not None:
        return step_error(result.error)
    return integer(result.results[0])  # type: ignore[arg-type]


def _by(key: bytes, delta: int) -> Plan:
    return Change(Txn((), (Add(key, delta),)), _counter)


def incr(ctx: Context, args: list[bytes]) -> Plan:
    return _by(args[1], 1)


def decr(ctx: Context, args: list[bytes]) -> Plan:
    return _by(args[1], -1)


def incrby(ctx: Context, args: list[bytes]) -> Plan:
    delta = parse_int(args[2])
    return NOT_INTEGER if delta is None else _by(args[1], delta)


def decrby(ctx: Context, args: list[bytes]) -> Plan:
    delta = parse_int(args[2])
    if delta is None:
        return NOT_INTEGER
    if delta == INT64_MIN:
        return fail("ERR decrement would overflow")
    return _by(args[1], -delta)


def incrbyfloat(ctx: Context, args: list[bytes]) -> Plan:
    def render(result: TxnResult) -> bytes:
        if result.error is not None:
            return step_error(result.error)
        return bulk(result.results[0])  # type: ignore[arg-type]
    return Change(Txn((), (AddFloat(args[1], args[2]),)), render)


def append(ctx: Context, args: list[bytes]) -> Plan:
    return Change(Txn((), (Append(args[1], args[2], ctx.max_value_bytes),)), _counter)


def setrange(ctx: Context, args: list[bytes]) -> Plan:
    offset = parse_int(args[2])
    if offset is None:
        return NOT_INTEGER
    if offset < 0:
        return fail("ERR offset is out of range")
    return Change(Txn((), (SetRange(args[1], offset, args[3], ctx.max_value_bytes),)),
                  _counter)


def delete(ctx: Context, args: list[bytes]) -> Plan:
    return Change(Txn((), tuple(Remove(k) for k in args[1:])),
                  lambda r: integer(sum(bool(x) for x in r.results)))


def rename(ctx: Context, args: list[bytes]) -> Plan:
    def render(result: TxnResult) -> bytes:
        return step_error(result.error) if result.error is not None else OK
    return Change(Txn((), (Rename(args[1], args[2]),)), render)


def renamenx(ctx: Context, args: list[bytes]) -> Plan:
    def render(result: TxnResult) -> bytes:
        if result.error is not None:
            return step_error(result.error)
        return integer(int(bool(result.results[0])))
    return Change(Txn((), (Rename(args[1], args[2], nx=True),)), render)


# -- expiry --------------------------------------------------------------------------------
_WHEN: Final = {b"NX": When.NX, b"XX": When.XX, b"GT": When.GT, b"LT": When.LT}


def _expire(ctx: Context, args: list[bytes], unit: int, absolute: bool) -> Plan:
    name = args[0].decode("ascii", "replace").lower()
    flags: set[When] = set()
    for word in args[3:]:
        when = _WHEN.get(word.upper())
        if when is None:
            return fail(f"ERR Unsupported option {word.decode('utf-8', 'replace')}")
        flags.add(when)
    if When.NX in flags and len(flags) > 1:
        return fail("ERR NX and XX, GT or LT options at the same time are not compatible")
    if When.GT in flags and When.LT in flags:
        return fail("ERR GT and LT options at the same time are not compatible")
    number = parse_int(args[2])
    if number is None:
        return NOT_INTEGER
    if unit == 1000:
        if not INT64_MIN // 1000 <= number <= INT64_MAX // 1000:
            return _expire_error(name)
        number *= 1000
    base = 0 if absolute else ctx.now_ms()
    if number > INT64_MAX - base:
        return _expire_error(name)
    deadline = max(number + base, 0)  # already past: the key is deleted
    # XX with GT or LT: both must hold; GT and LT already require a deadline or not.
    when = next((w for w in (When.GT, When.LT, When.NX, When.XX) if w in flags), When.ALWAYS)
    return Change(Txn((), (Expire(args[1], deadline, when),)),
                  lambda r: integer(int(bool(r.results[0]))))


def expire(ctx: Context, args: list[bytes]) -> Plan:
    return _expire(ctx, args, 1000, absolute=False)


def pexpire(ctx: Context, args: list[bytes]) -> Plan:
    return _expire(ctx, args, 1, absolute=False)


def expireat(ctx: Context, args: list[bytes]) -> Plan:
    return _expire(ctx, args, 1000, absolute=True)


def pexpireat(ctx: Context, args: list[bytes]) -> Plan:
    return _expire(ctx, args, 1, absolute=True)


def persist(ctx: Context, args: list[bytes]) -> Plan:
    return Change(Txn((), (Expire(args[1], None, When.XX),)),
                  lambda r: integer(int(bool(r.results[0]))))


# -- the whole keyspace --------------------------------------------------------------------
def glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Redis's stringmatchlen as a regular expression: ``*``, ``?``, ``[...]`` with
    ``^`` and ranges, and ``\\`` escaping the next byte."""
    out = bytearray()
    i, size = 0, len(pattern)
    while i < size:
        c = pattern[i:i + 1]
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i + 1 < size:
            i += 1
            out += re.escape(pattern[i:i + 1])
        elif c == b"[":
            i, part = _glob_class(pattern, i + 1)
            out += part
        else:
            out += re.escape(c)
        i += 1
    return re.compile(bytes(out), re.DOTALL)


def _glob_class(pattern: bytes, i: int) -> tuple[int, bytes]:
    """A ``[...]`` class from ``i`` (after the ``[``): (index of its ``]``, regex)."""
    negate = pattern[i:i + 1] == b"^"
    if negate:
        i += 1
    items: list[bytes] = []
    size = len(pattern)
    while i < size and pattern[i:i + 1] != b"]":
        c = pattern[i:i + 1]
        if c == b"\\" and i + 1 < size:
            i += 1
            items.append(re.escape(pattern[i:i + 1]))
        elif i + 2 < size and pattern[i + 1:i + 2] == b"-" and pattern[i + 2:i + 3] != b"]":
            low, high = sorted((pattern[i], pattern[i + 2]))
            items.append(b"%s-%s" % (re.escape(bytes([low])), re.escape(bytes([high]))))
            i += 2
        else:
            items.append(re.escape(c))
        i += 1
    if i >= size:
        i = size - 1  # an unclosed class ends the pattern, as in Redis
    body = b"".join(items)
    if not body:
        return i, b"[^\\x00-\\xff]" if not negate else b"[\\x00-\\xff]"
    return i, b"[%s%s]" % (b"^" if negate else b"", body)


def keys(ctx: Context, args: list[bytes]) -> Plan:
    pattern = args[1]
    match = None if pattern == b"*" else glob_regex(pattern).fullmatch

    def read() -> bytes:
        now = ctx.now_ms()
        expires = ctx.expires
        found = [bulk(k) for k in list(ctx.values)
                 if (match is None or match(k)) and not (k in expires and expires[k] <= now)]
        return array(found)
    return Compute(read)


def dbsize(ctx: Context, args: list[bytes]) -> Plan:
    return Compute(lambda: integer(len(ctx.values)))


def randomkey(ctx: Context, args: list[bytes]) -> Plan:
    def read() -> bytes:
        values, expires, now = ctx.values, ctx.expires, ctx.now_ms()
        for _ in range(100):
            if not values:
                break
            # Dict order is insertion order: start at a random place among the first
            # 4096 keys (an O(1) pick would need a second index of every key).
            skip = random.randrange(min(len(values), 4096))
            for index, key in enumerate(values):
                if index == skip:
                    if not (key in expires and expires[key] <= now):
                        return bulk(key)
                    break
        return null(ctx.resp3)
    return Compute(read)


CURSOR_KEY_LIMIT: Final = 1700
"""Keys longer than this are cut in a SCAN cursor (a cursor is a decimal number, and
Python clients parse it with int(), which refuses more than 4,300 digits)."""


def encode_cursor(page: Page) -> bytes:
    """The cursor after ``page``: 0 when it was the last, else the last key as a number."""
    if not page.more or not page.keys:
        return b"0"
    last = page.keys[-1]
    marker = b"\x01" if len(last) <= CURSOR_KEY_LIMIT else b"\x02"
    return b"%d" % int.from_bytes(marker + last[:CURSOR_KEY_LIMIT], "big")


def decode_cursor(cursor: int) -> tuple[bytes, bool]:
    """(start, after) of the scan a cursor continues; an unknown cursor starts over."""
    raw = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")
    if raw[:1] == b"\x01":
        return raw[1:], True
    if raw[:1] == b"\x02":
        return raw[1:], False  # a cut key: start at its prefix (keys may repeat)
    return b"", False


def scan(ctx: Context, args: list[bytes]) -> Plan:
    text = args[1]
    if not text.isdigit() or not text.isascii() or len(text) > 4300:
        return fail("ERR invalid cursor")
    count, match, kind = 10, None, None
    i = 2
    while i < len(args):
        word = args[i].upper()
        if i + 1 >= len(args):
            return SYNTAX
        arg = args[i + 1]
        if word == b"COUNT":
            number = parse_int(arg)
            if number is None:
                return NOT_INTEGER
            if number < 1:
                return SYNTAX
            count = number
        elif word == b"MATCH":
            match = None if arg == b"*" else glob_regex(arg).fullmatch
        elif word == b"TYPE":
            kind = arg.lower()
        else:
            return SYNTAX
        i += 2
    start, after = decode_cursor(int(text))

    def render(page: Page) -> bytes:
        found = page.keys
        if kind is not None and kind != b"string":
            found = []
        elif match is not None:
            found = [k for k in found if match(k)]
        return array([bulk(encode_cursor(page)), array([bulk(k) for k in found])])
    return Listing(Scan(start, None, min(count, SCAN_MAX_LIMIT), after), render)


# -- the table -----------------------------------------------------------------------------
Handler = Callable[[Context, list[bytes]], Plan]


@dataclass(slots=True, frozen=True)
class Command:
    """One supported command, as COMMAND reports it."""

    name: str
    handler: Handler | None
    """None: a connection-level command the connection handles (``Session``)."""
    arity: int
    """Redis's arity: the exact argument count with the name, or -N for at least N."""
    flags: tuple[str, ...]
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "string"
    summary: str = ""


_W, _R, _F = ("write",), ("readonly",), ("fast",)
TABLE: Final[dict[bytes, Command]] = {c.name.encode(): c for c in (
    Command("get", get, 2, _R + _F, 1, 1, 1, summary="Get the value of a key"),
    Command("set", set_, -3, _W, 1, 1, 1, summary="Set the value of a key, with options"),
    Command("setnx", setnx, 3, _W + _F, 1, 1, 1, summary="Set a key only if it is absent"),
    Command("setex", setex, 4, _W, 1, 1, 1, summary="Set a key with a TTL in seconds"),
    Command("psetex", psetex, 4, _W, 1, 1, 1, summary="Set a key with a TTL in ms"),
    Command("getset", getset, 3, _W + _F, 1, 1, 1, summary="Set a key, return the old value"),
    Command("getdel", getdel, 2, _W + _F, 1, 1, 1, summary="Get a key and delete it"),
    Command("getex", getex, -2, _W + _F, 1, 1, 1, summary="Get a key and change its TTL"),
    Command("mget", mget, -2, _R + _F, 1, -1, 1, summary="Get the values of keys"),
    Command("mset", mset, -3, _W, 1, -1, 2, summary="Set keys atomically"),
    Command("msetnx", msetnx, -3, _W, 1, -1, 2, summary="Set keys if none exists"),
    Command("incr", incr, 2, _W + _F, 1, 1, 1, summary="Increment an integer by one"),
    Command("decr", decr, 2, _W + _F, 1, 1, 1, summary="Decrement an integer by one"),
    Command("incrby", incrby, 3, _W + _F, 1, 1, 1, summary="Increment an integer"),
    Command("decrby", decrby, 3, _W + _F, 1, 1, 1, summary="Decrement an integer"),
    Command("incrbyfloat", incrbyfloat, 3, _W + _F, 1, 1, 1, summary="Increment a float"),
    Command("append", append, 3, _W, 1, 1, 1, summary="Append to a value"),
    Command("strlen", strlen, 2, _R + _F, 1, 1, 1, summary="Length of a value"),
    Command("getrange", getrange, 4, _R, 1, 1, 1, summary="Part of a value"),
    Command("setrange", setrange, 4, _W, 1, 1, 1, summary="Overwrite part of a value"),
    Command("del", delete, -2, _W, 1, -1, 1, group="generic", summary="Delete keys"),
    Command("unlink", delete, -2, _W + _F, 1, -1, 1, group="generic", summary="Delete keys"),
    Command("exists", exists, -2, _R + _F, 1, -1, 1, group="generic",
            summary="Count the keys that exist"),
    Command("type", type_, 2, _R + _F, 1, 1, 1, group="generic", summary="Type of a key"),
    Command("keys", keys, 2, _R, group="generic", summary="Keys matching a pattern"),
    Command("scan", scan, -2, _R, group="generic", summary="Iterate the keys in order"),
    Command("randomkey", randomkey, 1, _R, group="generic", summary="A random key"),
    Command("rename", rename, 3, _W, 1, 2, 1, group="generic", summary="Rename a key"),
    Command("renamenx", renamenx, 3, _W + _F, 1, 2, 1, group="generic",
            summary="Rename a key if the new name is free"),
    Command("expire", expire, -3, _W + _F, 1, 1, 1, group="generic",
            summary="Set a key's TTL in seconds"),
    Command("pexpire", pexpire, -3, _W + _F, 1, 1, 1, group="generic",
            summary="Set a key's TTL in ms"),
    Command("expireat", expireat, -3, _W + _F, 1, 1, 1, group="generic",
            summary="Set a key's expiry as a Unix time in seconds"),
    Command("pexpireat", pexpireat, -3, _W + _F, 1, 1, 1, group="generic",
            summary="Set a key's expiry as a Unix time in ms"),
    Command("ttl", ttl, 2, _R + _F, 1, 1, 1, group="generic", summary="TTL in seconds"),
    Command("pttl", pttl, 2, _R + _F, 1, 1, 1, group="generic", summary="TTL in ms"),
    Command("expiretime", expiretime, 2, _R + _F, 1, 1, 1, group="generic",
            summary="Expiry as a Unix time in seconds"),
    Command("pexpiretime", pexpiretime, 2, _R + _F, 1, 1, 1, group="generic",
            summary="Expiry as a Unix time in ms"),
    Command("persist", persist, 2, _W + _F, 1, 1, 1, group="generic", summary="Remove a TTL"),
    Command("dbsize", dbsize, 1, _R + _F, group="server", summary="Number of keys"),
    Command("flushall", None, -1, _W, group="server", summary="Delete every key (durably)"),
    Command("flushdb", None, -1, _W, group="server", summary="Delete every key (durably)"),
    Command("ping", None, -1, _F, group="connection", summary="Ping the server"),
    Command("echo", None, 2, _F, group="connection", summary="Echo the argument"),
    Command("quit", None, -1, _F, group="connection", summary="Close the connection"),
    Command("hello", None, -1, _F, group="connection", summary="Handshake, pick RESP2/3"),
    Command("auth", None, -2, _F, group="connection", summary="Authenticate"),
    Command("select", None, 2, _F, group="connection", summary="Select database 0"),
    Command("client", None, -2, (), group="connection", summary="Connection settings"),
    Command("command", None, -1, (), group="server", summary="Supported commands"),
    Command("config", None, -2, (), group="server", summary="Read the configuration"),
    Command("info", None, -1, (), group="server", summary="Server information"),
    Command("time", None, 1, _F, group="server", summary="The server's clock"),
    Command("wait", None, 3, (), group="generic", summary="No replicas: answers 0"),
    Command("waitaof", None, 4, (), group="generic",
            summary="Every acknowledged write is already fsynced: answers at once"),
    Command("multi", None, 1, _F, group="transactions", summary="Start a transaction"),
    Command("exec", None, 1, (), group="transactions", summary="Run the transaction atomically"),
    Command("discard", None, 1, _F, group="transactions", summary="Drop the transaction"),
    Command("watch", None, -2, _F, 1, -1, 1, group="transactions",
            summary="Abort EXEC if these keys change"),
    Command("unwatch", None, 1, _F, group="transactions", summary="Forget watched keys"),
)}
"""Every command walkv answers, by lower-case name."""


def now_seconds() -> tuple[int, int]:
    """TIME: seconds and microseconds."""
    ns = time.time_ns()
    return ns // 1_000_000_000, (ns // 1000) % 1_000_000


def step_result_error(result: object) -> bytes | None:
    """The error reply of a failed step of an EXEC, if ``result`` is one."""
    if isinstance(result, StepFailure):
        return step_error(result.message)
    if isinstance(result, TxnResult) and result.error is not None:
        return step_error(result.error)
    return None
