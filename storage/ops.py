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
integer) applies nothing of the transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeAlias

from storage.errors import InvalidOperationError
from storage.format import Op
from storage.keyspace import Keyspace

TXN_MAX_STEPS = 128
"""Conditions plus steps of one transaction at most (etcd's default ``--max-txn-ops``)."""
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

    Result: the new length.
    """

    key: bytes
    suffix: bytes


@dataclass(frozen=True, slots=True)
class Expire:
    """Set (``deadline``) or remove (None) the expiry of ``key`` if it holds a value.

    Result: whether it held a value.
    """

    key: bytes
    deadline: int | None


Step: TypeAlias = Fetch | Store | Remove | Add | Append | Expire
StepResult: TypeAlias = bytes | int | bool | None


@dataclass(frozen=True, slots=True)
class Txn:
    """Conditions, then ``then`` if all hold, else ``otherwise`` (see the module docstring)."""

    compare: tuple[Compare, ...] = ()
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()

    def size(self) -> int:
        """Conditions plus steps, the count ``TXN_MAX_STEPS`` caps."""
        return len(self.compare) + len(self.then) + len(self.otherwise)


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


class Evaluation:
    """One commit group's view of the keyspace: the table plus the group's effects so far.

    ``ops``, ``keys``, ``values``, ``deadlines`` collect the effects as columns. The
    group's plain writes go through ``put``/``delete``/``clear`` too, so an operation
    sees every earlier write of its group.
    """

    __slots__ = ("_cleared", "_overlay", "_undo", "deadlines", "keys", "keyspace", "now",
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

    def delete(self, key: bytes) -> None:
        """Record a DELETE."""
        self._record(_DELETE, key, None, None)
        self._set(key, (None, None))

    def expire(self, key: bytes, deadline: int | None) -> None:
        """Record an EXPIRE of a key that holds a value."""
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
        self.ops.append(op)
        self.keys.append(key)
        self.values.append(value)
        self.deadlines.append(deadline)
        if deadline is not None:
            self.timed = True

    def begin(self) -> int:
        """Start remembering how to undo what follows (one transaction); its mark."""
        self._undo = []
        return len(self.ops)

    def rollback(self, mark: int) -> None:
        """Forget the effects recorded since ``begin`` returned ``mark``."""
        del self.ops[mark:], self.keys[mark:], self.values[mark:], self.deadlines[mark:]
        undo, self._undo = self._undo or [], None
        overlay = self._overlay
        for key, before in reversed(undo):
            if key is None:  # a CLEAR: the whole overlay as it was
                saved, self._cleared = before
                overlay.clear()
                overlay.update(saved)
            elif before is None:
                overlay.pop(key, None)
            else:
                overlay[key] = before
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

    def _txn(self, txn: Txn) -> TxnResult:
        failed = next((i for i, c in enumerate(txn.compare) if not self._holds(c)), None)
        steps = txn.then if failed is None else txn.otherwise
        mark = self.begin()
        results: list[StepResult] = []
        for index, step in enumerate(steps):
            try:
                results.append(self._step(step))
            except StepError as exc:
                self.rollback(mark)
                return TxnResult(False, failed=failed, error=str(exc), error_step=index)
        self._undo = None
        return TxnResult(failed is None, tuple(results), failed)

    def _holds(self, compare: Compare) -> bool:
        value, _ = self.lookup(compare.key)
        check = compare.check
        if check is Check.ABSENT:
            return value is None
        if value is None:
            return False
        if check is Check.PRESENT:
            return True
        if check is Check.VALUE:
            return value == compare.operand
        return etag(value).encode() == compare.operand

    def _step(self, step: Step) -> StepResult:
        kind = type(step)
        if kind is Fetch:
            return self.lookup(step.key)[0]
        if kind is Store:
            return self._store(step)  # type: ignore[arg-type]
        if kind is Remove:
            existed = self.lookup(step.key)[0] is not None
            if existed or self.physically_present(step.key):
                self.delete(step.key)
            return existed
        if kind is Add:
            return self._add(step)  # type: ignore[arg-type]
        if kind is Append:
            value, deadline = self.lookup(step.key)
            joined = (value or b"") + step.suffix  # type: ignore[union-attr]
            self.put(step.key, joined, deadline)
            return len(joined)
        return self._expire(step)  # type: ignore[arg-type]

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

    def _expire(self, step: Expire) -> bool:
        value, deadline = self.lookup(step.key)
        if value is None:
            return False
        if step.deadline != deadline:
            self.expire(step.key, step.deadline)
        return True

    def _scan(self, scan: Scan) -> Page:
        # Only durable state is listed: the committer evaluates every Scan of a group
        # before the group's writes, against the table as the previous group left it.
        space = self.keyspace
        space.catch_up()
        keys, more = space.page(scan.start, scan.end, not scan.after, scan.limit, self.now)
        values = [space.values[k] for k in keys] if scan.values else []
        return Page(keys, values, more)


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


def _check_txn(txn: Txn) -> None:
    if txn.size() > TXN_MAX_STEPS:
        raise InvalidOperationError(
            f"a transaction holds at most {TXN_MAX_STEPS} conditions and steps")
    for compare in txn.compare:
        if (type(compare) is not Compare or type(compare.key) is not bytes
                or type(compare.operand) is not bytes):
            raise InvalidOperationError("a condition needs a bytes key and operand")
    for step in txn.then + txn.otherwise:
        _check_step(step)


def _check_step(step: object) -> None:
    if type(step) not in _STEP_TYPES or type(getattr(step, "key", None)) is not bytes:
        raise InvalidOperationError("a step needs a bytes key")
    if type(step) is Store and type(step.value) is not bytes:
        raise InvalidOperationError("a Store needs a bytes value")
    if type(step) is Append and type(step.suffix) is not bytes:
        raise InvalidOperationError("an Append needs a bytes suffix")
    if type(step) is Add and (type(step.delta) is not int
                              or not INT64_MIN <= step.delta <= INT64_MAX):
        raise InvalidOperationError("an Add needs a 64-bit integer delta")
    deadline = getattr(step, "deadline", None)
    if deadline is not None and (type(deadline) is not int or deadline < 0):
        raise InvalidOperationError("a deadline is a non-negative integer (ms since the epoch)")


_STEP_TYPES = (Fetch, Store, Remove, Add, Append, Expire)
