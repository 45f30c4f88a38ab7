"""Operations the committer evaluates in commit order: transactions and listings.

A ``Txn`` is etcd's transaction: conditions (``Compare``), then the steps of ``then``
if every condition holds, else the steps of ``otherwise``. A single conditional or
read-modify-write operation is a transaction of one step: compare-and-set is
``Txn((Compare(k, Check.ETAG, tag),), (Store(k, v),))``, create-if-absent is
``Check.ABSENT``, an increment is ``Txn((), (Add(k, 1),))``. A ``Scan`` reads one page
of keys in byte order.

The committer evaluates them against the state left by every earlier write in the
log, including earlier writes of the same commit group (``Evaluation``), so two
increments in one group both count and two create-if-absent calls have one winner.
What it stores are the *effects* (PUT, DELETE, EXPIRE records with their deadlines),
so replaying the log is a plain apply. A transaction is all or nothing: its effects
go into one frame, and a step that fails (an increment of a value that is not an
integer) applies nothing of the transaction, unless the transaction is
``independent`` (Redis's EXEC): then each step succeeds or fails on its own, a failed
step's result is a ``StepFailure``, and the others still apply, in the same frame. A
step may itself be a ``Txn`` (one level deep), so a queue of conditional commands is
one transaction too.

An ``Expire`` whose deadline has already passed deletes the key, as Redis does for
``EXPIRE key 0`` (a value stored with a past deadline is invisible at once and reclaimed
by the next sweep).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import Any, TypeAlias, Union

from storage.errors import InvalidOperationError
from storage.format import Op
from storage.keyspace import Keyspace

TXN_MAX_STEPS = 128
"""Conditions plus operations of one transaction a client may send as such (etcd's
default ``--max-txn-ops``): the HTTP ``/txn`` route's cap."""
OPERATION_MAX_STEPS = 1 << 20
"""Conditions plus steps of one transaction the engine evaluates at most: the Redis
protocol's most arguments in one command (an MSET of many keys is one transaction)."""
SCAN_MAX_LIMIT = 10_000
"""Keys one ``Scan`` may ask for."""
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

_PUT, _DELETE, _EXPIRE = int(Op.PUT), int(Op.DELETE), int(Op.EXPIRE)


def etag(value: bytes) -> str:
    """The version a client compares: a strong hash of the value (32 hex digits)."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


class Check(IntEnum):
    """What a ``Compare`` asks of its key."""

    ABSENT = 1
    """The key holds no value (or it expired)."""
    PRESENT = 2
    """The key holds a value."""
    VALUE = 3
    """The key holds exactly ``operand``."""
    ETAG = 4
    """The key holds a value whose ``etag`` is ``operand`` (ASCII)."""
    UNTOUCHED = 5
    """No write touched any key the watcher ``operand`` (decimal id) watches since its
    ``Watch`` (Redis's EXEC after WATCH); the key is not looked at."""


@dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction."""

    key: bytes
    check: Check
    operand: bytes = b""


@dataclass(frozen=True, slots=True)
class Fetch:
    """Read ``key`` inside the transaction. Result: its value, or None."""

    key: bytes


@dataclass(frozen=True, slots=True)
class Store:
    """Set ``key`` to ``value``. Result: the previous value, or None.

    ``deadline``: expire at this time (ms since the epoch); None: never, unless
    ``keep_ttl``, which keeps the deadline the key had.
    """

    key: bytes
    value: bytes
    deadline: int | None = None
    keep_ttl: bool = False


@dataclass(frozen=True, slots=True)
class Remove:
    """Delete ``key``. Result: whether it held a value."""

    key: bytes


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``delta`` to the decimal integer in ``key`` (absent: 0), keeping its deadline.

    Result: the new value as an int. Fails if the value is not a 64-bit integer or the
    sum would leave that range.
    """

    key: bytes
    delta: int


@dataclass(frozen=True, slots=True)
class Append:
    """Append ``suffix`` to the value of ``key`` (absent: empty), keeping its deadline.
    Fails if the value would exceed ``limit`` bytes (None: no limit).

    Result: the new length.
    """

    key: bytes
    suffix: bytes
    limit: int | None = None


class When(IntEnum):
    """Which current expiry an ``Expire`` may replace (Redis's EXPIRE options)."""

    ALWAYS = 0
    NX = 1
    """Only a key without a deadline."""
    XX = 2
    """Only a key with a deadline."""
    GT = 3
    """Only if the new deadline is later (no deadline counts as infinitely late)."""
    LT = 4
    """Only if the new deadline is earlier (no deadline counts as infinitely late)."""


@dataclass(frozen=True, slots=True)
class Expire:
    """Set (``deadline``) or remove (None) the expiry of ``key`` if it holds a value and
    ``when`` allows it. A deadline already past deletes the key.

    Result: with ``When.ALWAYS``, whether the key held a value; otherwise whether the
    expiry was set (Redis's 1 or 0).
    """

    key: bytes
    deadline: int | None
    when: When = When.ALWAYS


@dataclass(frozen=True, slots=True)
class Inspect:
    """Read ``key`` and its deadline. Result: ``(value, deadline)``, or None if absent."""

    key: bytes


@dataclass(frozen=True, slots=True)
class AddFloat:
    """Add the decimal number ``delta`` to the number in ``key`` (absent: 0) the way
    Redis's INCRBYFLOAT does (80-bit long double arithmetic, printed with up to 17
    decimals, trailing zeros dropped), keeping its deadline. Result: the new value."""

    key: bytes
    delta: bytes


@dataclass(frozen=True, slots=True)
class SetRange:
    """Overwrite ``key``'s value from byte ``offset`` with ``data``, padding with zero
    bytes (absent: empty), keeping its deadline; nothing is written when the key is
    absent and ``data`` empty. Fails if the value would exceed ``limit`` bytes.
    Result: the new length."""

    key: bytes
    offset: int
    data: bytes
    limit: int


@dataclass(frozen=True, slots=True)
class Rename:
    """Move ``key``'s value and deadline to ``target`` (replacing it unless ``nx``).

    Result: whether it moved (False only with ``nx`` and ``target`` present). Fails if
    ``key`` holds no value.
    """

    key: bytes
    target: bytes
    nx: bool = False


@dataclass(frozen=True, slots=True)
class Watch:
    """``watcher`` starts watching ``key`` (Redis's WATCH): any later write to it, even
    one that leaves the same value, breaks ``Check.UNTOUCHED`` for the watcher.
    Watches live in memory only; every watcher needs its ``Unwatch``. Result: True."""

    key: bytes
    watcher: int


@dataclass(frozen=True, slots=True)
class Unwatch:
    """``watcher`` stops watching every key (``key`` is unused). Result: True."""

    watcher: int
    key: bytes = b""


@dataclass(frozen=True, slots=True)
class Flush:
    """Remove every key (a CLEAR record). Result: True."""

    key: bytes = b""


Step: TypeAlias = Union[Fetch, Store, Remove, Add, Append, Expire, Inspect, AddFloat, SetRange,
                        Rename, Watch, Unwatch, Flush, "Txn"]


@dataclass(frozen=True, slots=True)
class StepFailure:
    """The result of a step of an ``independent`` transaction that could not run."""

    message: str


StepResult: TypeAlias = Union[bytes, int, bool, tuple[bytes, "int | None"], StepFailure,
                              "TxnResult", None]


@dataclass(frozen=True, slots=True)
class Txn:
    """Conditions, then ``then`` if all hold, else ``otherwise`` (see the module docstring)."""

    compare: tuple[Compare, ...] = ()
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()
    independent: bool = False
    """Each step succeeds or fails alone (Redis's EXEC), see the module docstring."""

    def size(self) -> int:
        """Conditions plus steps (those of nested transactions too), the count
        ``OPERATION_MAX_STEPS`` caps."""
        return len(self.compare) + sum(s.size() if type(s) is Txn else 1
                                       for s in self.then + self.otherwise)


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What a transaction did.

    ``succeeded``: every condition held and ``then`` ran. Otherwise ``failed`` is the
    index of the first condition that did not hold, and ``otherwise`` ran. ``results``
    has one entry per step that ran. ``error`` (with ``error_step``, an index into the
    branch that ran) means a step could not run and nothing was applied.
    """

    succeeded: bool
    results: tuple[StepResult, ...] = ()
    failed: int | None = None
    error: str | None = None
    error_step: int | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """One page of live keys in byte order: from ``start`` (inclusive unless ``after``)
    below ``end`` (None: no bound), at most ``limit``; values too if ``values``."""

    start: bytes = b""
    end: bytes | None = None
    limit: int = 1000
    after: bool = False
    values: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """The answer to a ``Scan``: keys (and values), and whether more follow the last."""

    keys: list[bytes]
    values: list[bytes] = field(default_factory=list)
    more: bool = False


Operation: TypeAlias = Txn | Scan
"""What an ``Op.EVALUATE`` write carries."""
OperationResult: TypeAlias = TxnResult | Page


class StepError(Exception):
    """A step cannot run (the message is Redis's wording, for every protocol)."""


NOT_AN_INTEGER = "value is not an integer or out of range"
OVERFLOW = "increment or decrement would overflow"
NOT_A_FLOAT = "value is not a valid float"
NOT_FINITE = "increment would produce NaN or Infinity"
NO_SUCH_KEY = "no such key"
TOO_LONG = "string exceeds maximum allowed size (proto-max-bulk-len)"


class Evaluation:
    """One commit group's view of the keyspace: the table plus the group's effects so far.

    ``ops``, ``keys``, ``values``, ``deadlines`` collect the effects as columns. The
    group's plain writes go through ``put``/``delete``/``clear`` too, so an operation
    sees every earlier write of its group.
    """

    __slots__ = ("_cleared", "_marked", "_overlay", "_undo", "deadlines", "keys", "keyspace", "now",
                 "ops", "timed", "values")

    def __init__(self, keyspace: Keyspace, now: int) -> None:
        self.keyspace = keyspace
        self.now = now
        self.ops = bytearray()
        self.keys: list[bytes] = []
        self.values: list[bytes | None] = []
        self.deadlines: list[int | None] = []
        self.timed = False
        """Some effect carries a deadline (the frame needs its deadline column)."""
        self._overlay: dict[bytes, tuple[bytes | None, int | None]] = {}
        self._cleared = False
        self._undo: list[tuple[bytes | None, Any]] | None = None
        self._marked: list[int] = []
        """Watchers this group marked dirty, in order (see ``_touch``)."""
        """While a transaction runs: how to put the overlay back, entry by entry."""

    # -- reading --------------------------------------------------------------------------
    def lookup(self, key: bytes) -> tuple[bytes | None, int | None]:
        """(value, deadline) of ``key`` as the group has left it; (None, None) if absent."""
        entry = self._overlay.get(key)
        if entry is not None:
            deadline = entry[1]
            if deadline is not None and deadline <= self.now:
                return None, None  # stored (or expired) earlier in the group, already past
            return entry
        if self._cleared:
            return None, None
        space = self.keyspace
        value = space.values.get(key)
        if value is None:
            return None, None
        deadline = space.expires.get(key)
        if deadline is not None and deadline <= self.now:
            return None, None
        return value, deadline

    # -- effects --------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, deadline: int | None) -> None:
        """Record a PUT."""
        self._record(_PUT, key, value, deadline)
        self._set(key, (value, deadline))

    def _drop(self, key: bytes) -> None:
        """Record a DELETE of ``key`` if anything is stored under it."""
        if self.physically_present(key):
            self.delete(key)

    def delete(self, key: bytes) -> None:
        """Record a DELETE."""
        self._record(_DELETE, key, None, None)
        self._set(key, (None, None))

    def expire(self, key: bytes, deadline: int | None) -> None:
        """Record an EXPIRE of a key that holds a value (a DELETE if ``deadline`` has
        passed)."""
        if deadline is not None and deadline <= self.now:
            self._drop(key)
            return
        value, _ = self.lookup(key)
        self._record(_EXPIRE, key, None, deadline)
        self._set(key, (value, deadline))

    def clear(self) -> None:
        """Record a CLEAR."""
        self._record(int(Op.CLEAR), b"", None, None)
        if self._undo is not None:
            self._undo.append((None, (dict(self._overlay), self._cleared)))
        self._overlay.clear()
        self._cleared = True

    def _set(self, key: bytes, entry: tuple[bytes | None, int | None]) -> None:
        if self._undo is not None:
            self._undo.append((key, self._overlay.get(key)))
        self._overlay[key] = entry

    def _record(self, op: int, key: bytes, value: bytes | None, deadline: int | None) -> None:
        if self.keyspace.watchers:
            self._touch(op, key)
        self.ops.append(op)
        self.keys.append(key)
        self.values.append(value)
        self.deadlines.append(deadline)
        if deadline is not None:
            self.timed = True

    def _touch(self, op: int, key: bytes) -> None:
        """Mark the watchers of ``key`` (a CLEAR: of every key that exists) now, in
        commit order, remembering whom it newly marked (a rollback unmarks them)."""
        space = self.keyspace
        if op == int(Op.CLEAR):
            keys = [k for k in space.watchers if self.physically_present(k)]
        else:
            keys = [key]
        for touched in keys:
            for watcher in space.watchers.get(touched, ()):
                if watcher not in space.dirty:
                    space.dirty.add(watcher)
                    self._marked.append(watcher)

    def begin(self) -> tuple[int, int, int]:
        """A savepoint: how to undo what follows (a transaction, or one of its steps)."""
        if self._undo is None:
            self._undo = []
        return len(self.ops), len(self._undo), len(self._marked)

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Forget the effects recorded since ``begin`` returned ``mark``."""
        ops_mark, undo_mark, marked_mark = mark
        self.keyspace.dirty.difference_update(self._marked[marked_mark:])
        del self._marked[marked_mark:]
        del self.ops[ops_mark:], self.keys[ops_mark:], self.values[ops_mark:]
        del self.deadlines[ops_mark:]
        undo = self._undo or []
        overlay = self._overlay
        for key, before in reversed(undo[undo_mark:]):
            if key is None:  # a CLEAR: the whole overlay as it was
                saved, self._cleared = before
                overlay.clear()
                overlay.update(saved)
            elif before is None:
                overlay.pop(key, None)
            else:
                overlay[key] = before
        del undo[undo_mark:]
        self.timed = any(d is not None for d in self.deadlines)

    def physically_present(self, key: bytes) -> bool:
        """``key`` is in the table or the group's effects, even if expired."""
        entry = self._overlay.get(key)
        if entry is not None:
            return entry[0] is not None
        return not self._cleared and key in self.keyspace.values

    # -- operations -----------------------------------------------------------------------
    def run(self, operation: Operation) -> OperationResult:
        """Evaluate ``operation`` at this point of the group."""
        if type(operation) is Scan:
            return self._scan(operation)
        return self._txn(operation)  # type: ignore[arg-type]

    def _txn(self, txn: Txn, nested: bool = False) -> TxnResult:
        failed = next((i for i, c in enumerate(txn.compare) if not self._holds(c)), None)
        steps = txn.then if failed is None else txn.otherwise
        mark = self.begin()
        results: list[StepResult] = []
        try:
            for index, step in enumerate(steps):
                if txn.independent:
                    results.append(self._alone(step))
                    continue
                try:
                    results.append(self._step(step))
                except StepError as exc:
                    self.rollback(mark)
                    return TxnResult(False, failed=failed, error=str(exc), error_step=index)
        finally:
            if not nested:
                self._undo = None
        return TxnResult(failed is None, tuple(results), failed)

    def _alone(self, step: Step) -> StepResult:
        """Run a step of an independent transaction: if it fails, only it is undone."""
        mark = self.begin()
        try:
            return self._step(step)
        except StepError as exc:
            self.rollback(mark)
            return StepFailure(str(exc))

    def _holds(self, compare: Compare) -> bool:
        value, _ = self.lookup(compare.key)
        check = compare.check
        if check is Check.ABSENT:
            return value is None
        if check is Check.UNTOUCHED:
            return int(compare.operand) not in self.keyspace.dirty
        if value is None:
            return False
        if check is Check.PRESENT:
            return True
        if check is Check.VALUE:
            return value == compare.operand
        return etag(value).encode() == compare.operand

    def _step(self, step: Step) -> StepResult:
        run: Callable[[Any], StepResult] = getattr(self, _RUNNERS[type(step)])
        return run(step)

    def _fetch(self, step: Fetch) -> bytes | None:
        return self.lookup(step.key)[0]

    def _remove(self, step: Remove) -> bool:
        existed = self.lookup(step.key)[0] is not None
        if existed or self.physically_present(step.key):
            self.delete(step.key)
        return existed

    def _inspect(self, step: Inspect) -> tuple[bytes, int | None] | None:
        value, deadline = self.lookup(step.key)
        return None if value is None else (value, deadline)

    def _watch(self, step: Watch) -> bool:
        self.keyspace.watch(step.watcher, step.key)
        return True

    def _unwatch(self, step: Unwatch) -> bool:
        self.keyspace.unwatch(step.watcher)
        return True

    def _flush(self, step: Flush) -> bool:
        self.clear()
        return True

    def _nested(self, step: Txn) -> TxnResult:
        return self._txn(step, nested=True)

    def _store(self, step: Store) -> bytes | None:
        old, deadline = self.lookup(step.key)
        self.put(step.key, step.value, deadline if step.keep_ttl else step.deadline)
        return old

    def _add(self, step: Add) -> int:
        value, deadline = self.lookup(step.key)
        current = 0 if value is None else parse_int64(value)
        total = current + step.delta
        if not INT64_MIN <= total <= INT64_MAX:
            raise StepError(OVERFLOW)
        self.put(step.key, str(total).encode(), deadline)
        return total

    def _append(self, step: Append) -> int:
        value, deadline = self.lookup(step.key)
        joined = (value or b"") + step.suffix
        if step.limit is not None and len(joined) > step.limit:
            raise StepError(TOO_LONG)
        self.put(step.key, joined, deadline)
        return len(joined)

    def _add_float(self, step: AddFloat) -> bytes:
        value, deadline = self.lookup(step.key)
        current = Fraction(0) if value is None else parse_long_double(value)
        total = long_double(current + parse_long_double(step.delta))
        text = format_long_double(total)
        self.put(step.key, text, deadline)
        return text

    def _set_range(self, step: SetRange) -> int:
        value, deadline = self.lookup(step.key)
        if not step.data:
            return 0 if value is None else len(value)
        end = step.offset + len(step.data)
        if end > step.limit:
            raise StepError(TOO_LONG)
        buffer = bytearray(value or b"")
        if len(buffer) < end:
            buffer.extend(bytes(end - len(buffer)))
        buffer[step.offset:end] = step.data
        self.put(step.key, bytes(buffer), deadline)
        return len(buffer)

    def _rename(self, step: Rename) -> bool:
        value, deadline = self.lookup(step.key)
        if value is None:
            raise StepError(NO_SUCH_KEY)
        if step.target == step.key:
            return not step.nx
        if step.nx and self.lookup(step.target)[0] is not None:
            return False
        self.put(step.target, value, deadline)
        self.delete(step.key)
        return True

    def _expire(self, step: Expire) -> bool:
        value, deadline = self.lookup(step.key)
        if value is None:
            return False
        new, when = step.deadline, step.when
        if when is not When.ALWAYS and not _expiry_allowed(when, deadline, new):
            return False
        if new != deadline:
            self.expire(step.key, new)
        return True

    def _scan(self, scan: Scan) -> Page:
        # Only durable state is listed: the committer evaluates every Scan of a group
        # before the group's writes, against the table as the previous group left it.
        space = self.keyspace
        space.catch_up()
        keys, more = space.page(scan.start, scan.end, not scan.after, scan.limit, self.now)
        values = [space.values[k] for k in keys] if scan.values else []
        return Page(keys, values, more)


_RUNNERS: dict[type, str] = {
    Fetch: "_fetch", Store: "_store", Remove: "_remove", Add: "_add", Append: "_append",
    Expire: "_expire", Inspect: "_inspect", AddFloat: "_add_float", SetRange: "_set_range",
    Rename: "_rename", Watch: "_watch", Unwatch: "_unwatch", Flush: "_flush", Txn: "_nested",
}
"""The ``Evaluation`` method that runs each kind of step."""


def _expiry_allowed(when: When, current: int | None, new: int | None) -> bool:
    """Whether ``when`` lets a key with deadline ``current`` get ``new`` (None: never)."""
    if when is When.NX:
        return current is None
    if when is When.XX:
        return current is not None
    # GT and LT: no deadline counts as infinitely late.
    if when is When.GT:
        return current is not None and new is not None and new > current
    return new is not None and (current is None or new < current)


# -- Redis's INCRBYFLOAT: x87 80-bit long double arithmetic, emulated exactly ------------
_MANTISSA_BITS = 64
_FLOAT_TEXT = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_FLOAT_CHARS = 5 * 1024
"""Redis's MAX_LONG_DOUBLE_CHARS."""
_LONG_DOUBLE_LIMIT = Fraction(2) ** 16384
_LONG_DOUBLE_TINY = Fraction(1, 2 ** 16445)


def long_double(x: Fraction) -> Fraction:
    """``x`` rounded to the nearest long double (64-bit mantissa, ties to even)."""
    if x == 0:
        return x
    magnitude = abs(x)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if magnitude < Fraction(2) ** exponent:
        exponent -= 1
    scale = Fraction(2) ** (_MANTISSA_BITS - 1 - exponent)
    rounded = round(magnitude * scale) / scale
    return rounded if x > 0 else -rounded


def parse_long_double(text: bytes) -> Fraction:
    """The long double ``strtold`` reads from ``text`` as Redis accepts it, or StepError
    (infinities read as values beyond range: they fail the sum's check)."""
    if not text or len(text) >= _MAX_FLOAT_CHARS:
        raise StepError(NOT_A_FLOAT)
    if _FLOAT_TEXT.fullmatch(text):
        value = long_double(Fraction(text.decode("ascii")))
        if abs(value) >= _LONG_DOUBLE_LIMIT or (value == 0 and _has_nonzero_digit(text)):
            raise StepError(NOT_A_FLOAT)  # strtold's ERANGE
        return value
    if text.lstrip(b"+-").lower() in (b"inf", b"infinity"):
        return _LONG_DOUBLE_LIMIT if text[:1] != b"-" else -_LONG_DOUBLE_LIMIT
    raise StepError(NOT_A_FLOAT)


def _has_nonzero_digit(text: bytes) -> bool:
    mantissa = text.lower().split(b"e")[0]
    return any(c in b"123456789" for c in mantissa)


def format_long_double(value: Fraction) -> bytes:
    """``value`` as Redis prints a float it stores: ``%.17Lf``, trailing zeros dropped;
    StepError if the sum is not finite."""
    if abs(value) >= _LONG_DOUBLE_LIMIT:
        raise StepError(NOT_FINITE)
    if abs(value) < _LONG_DOUBLE_TINY:
        value = Fraction(0)
    scaled = round(value * 10 ** 17)
    digits = str(abs(scaled)).rjust(18, "0")
    text = f"{'-' if scaled < 0 else ''}{digits[:-17]}.{digits[-17:]}".rstrip("0").rstrip(".")
    return b"0" if text == "-0" else text.encode("ascii")


def parse_int64(value: bytes) -> int:
    """The integer a value spells the way Redis accepts it, or StepError."""
    if not value or len(value) > 20 or not _is_canonical_int(value):
        raise StepError(NOT_AN_INTEGER)
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise StepError(NOT_AN_INTEGER)
    return number


def _is_canonical_int(value: bytes) -> bool:
    digits = value[1:] if value[:1] == b"-" else value
    if not digits.isdigit() or not digits.isascii():
        return False
    return (digits == b"0" and value == b"0") or digits[:1] != b"0"


def check_operation(operation: object) -> None:
    """Raise InvalidOperationError unless ``operation`` is a Txn or Scan the engine can run.

    Checked before anything is queued: a bad operation must never reach the log.
    """
    if type(operation) is Scan:
        _check_scan(operation)
    elif type(operation) is Txn:
        _check_txn(operation)
    else:
        raise InvalidOperationError("an EVALUATE write needs a Txn or a Scan")


def _check_scan(scan: Scan) -> None:
    if type(scan.start) is not bytes or not (scan.end is None or type(scan.end) is bytes):
        raise InvalidOperationError("scan bounds must be bytes")
    if type(scan.limit) is not int or not 1 <= scan.limit <= SCAN_MAX_LIMIT:
        raise InvalidOperationError(f"scan limit must be 1..{SCAN_MAX_LIMIT}")


def _check_txn(txn: Txn, nested: bool = False) -> None:
    if txn.size() > OPERATION_MAX_STEPS:
        raise InvalidOperationError(
            f"a transaction holds at most {OPERATION_MAX_STEPS} conditions and steps")
    for compare in txn.compare:
        if (type(compare) is not Compare or type(compare.key) is not bytes
                or type(compare.operand) is not bytes):
            raise InvalidOperationError("a condition needs a bytes key and operand")
        if compare.check is Check.UNTOUCHED and not (compare.operand.isdigit()
                                                     and len(compare.operand) < 20):
            raise InvalidOperationError("an UNTOUCHED condition needs a watcher id")
    for step in txn.then + txn.otherwise:
        if type(step) is Txn:
            if nested:
                raise InvalidOperationError("transactions nest one level deep")
            _check_txn(step, nested=True)
        else:
            _check_step(step)


def _check_step(step: object) -> None:
    if type(step) not in _STEP_TYPES or type(getattr(step, "key", None)) is not bytes:
        raise InvalidOperationError("a step needs a bytes key")
    for name in ("value", "suffix", "delta", "data", "target"):
        field_value = getattr(step, name, b"")
        if name == "delta" and type(step) is Add:
            if type(field_value) is not int or not INT64_MIN <= field_value <= INT64_MAX:
                raise InvalidOperationError("an Add needs a 64-bit integer delta")
        elif type(field_value) is not bytes:
            raise InvalidOperationError(f"a {type(step).__name__}'s {name} must be bytes")
    for name in ("offset", "limit"):
        number = getattr(step, name, 0)
        if number is not None and (type(number) is not int or number < 0):
            raise InvalidOperationError(f"a {type(step).__name__}'s {name} must be >= 0")
    deadline = getattr(step, "deadline", None)
    if deadline is not None and (type(deadline) is not int or deadline < 0):
        raise InvalidOperationError("a deadline is a non-negative integer (ms since the epoch)")


_STEP_TYPES = (Fetch, Store, Remove, Add, Append, Expire, Inspect, AddFloat, SetRange, Rename,
               Watch, Unwatch, Flush)
