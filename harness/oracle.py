"""What a key may hold after a crash, given what clients saw before it.

Theory of operation. Every write a client sends is recorded as an ``Op`` with the
value of a logical clock when it was sent; a 2xx reply stamps the clock again as
``acked``. The clock ticks on one event loop thread, so program order gives real-time
order on the client side, and the server's order must respect it:

    server applied X  <  server replied to X  <  client saw X's reply (X.acked)
                      <  client sent Y (Y.sent)  <  server applied Y

So an acknowledged op X is *superseded* when some acknowledged op Y on the same key
was sent after X was acknowledged: X cannot be the final state. Every other op on the
key (acknowledged or not) may have been applied last, because ops in flight at the
crash (or answered with an error) may or may not have been applied and their
interleaving with concurrent ops is unknown. The value a key held before the workload
counts as an op acknowledged at time 0.

An op answered with an error (non-2xx) is not acknowledged, but the server has
finished with it: it may have taken effect before its answer, never after. So it too
is superseded by an acknowledged op sent after its answer. An op with no answer at
all (in flight at the kill, or its connection died) is never superseded.

``DELETE /clear`` is an op on every key: it is recorded once (``sent_clear``) and
takes part in every key's history, with the result "absent".

The recovered value of a key must be the result of one op that is not superseded. A
violation is classified as:

- phantom: a value that no op of this round wrote to this key and that is not the
  key's initial state (torn, mixed, or another key's value);
- resurrected delete: the newest acknowledged op deleted the key (or cleared the
  store), it has an older value;
- lost acknowledged write: the newest acknowledged op wrote a value, the key holds an
  older value or nothing.

Values must be unique per op (``make_value``) or phantoms and stale values could be
mistaken for allowed ones.

Damage. When the harness itself destroyed log records (file damage), the ops whose
records it destroyed are passed to ``check`` as ``lost`` (their result cannot appear
and they supersede nothing) or, when a record does not say which op wrote it (a
DELETE or CLEAR among several alike), as ``unsure`` (they supersede nothing but may
still be the result). Everything else is checked as above: the ops acknowledged
before the damaged records must all be there.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

Value = bytes | None
"""A key's state: its value, or None when absent (never written or deleted)."""


class OpKind(enum.IntEnum):
    """What an op does to its key."""

    PUT = 1
    DELETE = 2
    CLEAR = 3


class ViolationKind(enum.Enum):
    """How a recovered key contradicts what clients were told."""

    LOST_ACKED_WRITE = "lost acknowledged write"
    RESURRECTED_DELETE = "resurrected delete"
    PHANTOM = "phantom value"
    NOT_A_PREFIX = "not a prefix of the history"
    """Only with a known total order: each key plausible, the whole state not."""


@dataclass
class Op:
    """One write sent to the server. ``acked`` is None until a 2xx reply is seen."""

    seq: int
    key: bytes
    kind: OpKind
    value: Value
    sent: int
    acked: int | None = None
    status: int | None = None
    replied: int | None = None
    """Clock when any reply (2xx or not) was read; None while unanswered."""

    @property
    def result(self) -> Value:
        """The key's state if this op was the last one applied."""
        return self.value if self.kind is OpKind.PUT else None


@dataclass(frozen=True)
class Violation:
    """One key whose recovered state no allowed history explains."""

    key: bytes
    kind: ViolationKind
    recovered: Value
    allowed: frozenset[Value]

    def describe(self) -> str:
        """One line for a test report."""
        allowed = ", ".join(sorted(_short(v) for v in self.allowed))
        held = _short(self.recovered)
        return f"{self.kind.value}: key {self.key!r} holds {held}; allowed {{{allowed}}}"


@dataclass
class CheckReport:
    """The outcome of checking every key of one crash cycle."""

    keys_checked: int
    acked_ops: int
    unknown_ops: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if no key contradicts the history."""
        return not self.violations

    def counts(self) -> Counter[ViolationKind]:
        """Violations per kind."""
        return Counter(v.kind for v in self.violations)

    def summary(self, limit: int = 20) -> str:
        """Counts per kind, then the first ``limit`` violations, one per line."""
        counts = self.counts()
        head = (
            f"{self.keys_checked} keys, {self.acked_ops} acknowledged ops, "
            f"{self.unknown_ops} unacknowledged (in flight or failed); "
            + ", ".join(f"{kind.value}: {counts[kind]}" for kind in ViolationKind)
        )
        lines = [head, *(v.describe() for v in self.violations[:limit])]
        return "\n".join(lines)


class Oracle:
    """Records ops as clients send them and checks the state recovered after a crash."""

    def __init__(self, initial: Mapping[bytes, Value] | None = None, first_seq: int = 0) -> None:
        self.initial: dict[bytes, Value] = dict(initial or {})
        self.ops: dict[bytes, list[Op]] = {}
        self.clears: list[Op] = []
        """``DELETE /clear`` ops, which belong to every key's history."""
        self.log: list[Op] = []
        """Every op in the order it was sent (a total order in serial mode)."""
        self._clock = 0
        self._next_seq = first_seq

    def next_seq(self) -> int:
        """Reserve a sequence number, unique across rounds, to build a value from."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def sent(self, key: bytes, kind: OpKind, value: Value, seq: int | None = None) -> Op:
        """Record an op at the moment its request was handed to the socket."""
        self._clock += 1
        op = Op(self.next_seq() if seq is None else seq, key, kind, value, sent=self._clock)
        if kind is OpKind.CLEAR:
            self.clears.append(op)
        else:
            self.ops.setdefault(key, []).append(op)
        self.log.append(op)
        return op

    def sent_clear(self) -> Op:
        """Record a ``DELETE /clear`` at the moment its request was sent."""
        return self.sent(b"", OpKind.CLEAR, None)

    def acked(self, op: Op, status: int = 200) -> None:
        """Record a 2xx reply for ``op``."""
        self._clock += 1
        op.acked = self._clock
        op.replied = self._clock
        op.status = status

    def answered(self, op: Op, status: int) -> None:
        """Record any reply; only 2xx counts as acknowledged, the rest stay unknown.

        A non-2xx write (e.g. 503 after an fsync error) may still have reached the
        log, so it is neither required nor forbidden after a crash.
        """
        if 200 <= status < 300:
            self.acked(op, status)
        else:
            self._clock += 1
            op.replied = self._clock
            op.status = status

    def unanswered(self) -> list[Op]:
        """Ops sent with no reply yet: in flight right now."""
        return [op for op in self.log if op.status is None]

    def keys(self) -> set[bytes]:
        """Every key with an initial state or an op."""
        return set(self.initial) | set(self.ops)

    def history(self, key: bytes) -> list[Op]:
        """Every op that acts on ``key``: its own ops and every clear."""
        return self.ops.get(key, []) + self.clears

    def allowed(self, key: bytes, lost: frozenset[int] = frozenset(),
                unsure: frozenset[int] = frozenset()) -> frozenset[Value]:
        """The states ``key`` may hold after a crash at this point.

        ``lost`` and ``unsure`` are op seqs whose records damage destroyed (certainly,
        or possibly): see the module docstring.
        """
        ops = [op for op in self.history(key) if op.seq not in lost]
        newest_acked_sent = max(
            (op.sent for op in ops if op.acked is not None and op.seq not in unsure), default=0
        )
        allowed = {op.result for op in ops if op.replied is None or op.replied > newest_acked_sent}
        if newest_acked_sent == 0:  # no acknowledged op: the initial state may remain
            allowed.add(self.initial.get(key))
        return frozenset(allowed)

    def check(self, recovered: Mapping[bytes, Value], lost: frozenset[int] = frozenset(),
              unsure: frozenset[int] = frozenset()) -> CheckReport:
        """Compare the recovered state of every known key against the history."""
        keys = self.keys()
        report = CheckReport(
            keys_checked=len(keys),
            acked_ops=sum(op.acked is not None for op in self.log),
            unknown_ops=sum(op.acked is None for op in self.log),
        )
        for key in sorted(keys):
            violation = self._check_key(key, recovered.get(key), lost, unsure)
            if violation is not None:
                report.violations.append(violation)
        return report

    def next_round(self, recovered: Mapping[bytes, Value]) -> Oracle:
        """A fresh oracle starting from the verified recovered state."""
        initial = {key: recovered.get(key) for key in self.keys()}
        return Oracle(initial, first_seq=self._next_seq)

    def _check_key(self, key: bytes, state: Value, lost: frozenset[int],
                   unsure: frozenset[int]) -> Violation | None:
        allowed = self.allowed(key, lost, unsure)
        if state in allowed:
            return None
        return Violation(key, self.classify(key, state), state, allowed)

    def classify(self, key: bytes, state: Value) -> ViolationKind:
        """What kind of violation it is for ``key`` to hold ``state`` (not allowed)."""
        ops = self.history(key)
        written = {op.result for op in ops} | {self.initial.get(key)}
        if state is not None and state not in written:
            return ViolationKind.PHANTOM
        acked = [op for op in ops if op.acked is not None]
        if not acked:  # nothing acknowledged this round: the initial value was lost
            return ViolationKind.LOST_ACKED_WRITE
        newest = max(acked, key=lambda op: op.sent)
        if newest.kind is not OpKind.PUT:
            return ViolationKind.RESURRECTED_DELETE
        return ViolationKind.LOST_ACKED_WRITE


def make_value(key: bytes, seq: int, rng: random.Random, max_filler: int = 256) -> bytes:
    """A value unique to (key, seq) that also exercises binary safety.

    The readable prefix names its key and op, so a misplaced or stale value is easy to
    recognise in a report; the filler is random bytes of random length, so a torn or
    truncated value differs from every value that was written.
    """
    filler = rng.randbytes(rng.randrange(0, max_filler + 1))
    return b"%s#%d#" % (key, seq) + filler


def _short(value: Value, limit: int = 40) -> str:
    if value is None:
        return "<absent>"
    text = repr(value[:limit])
    return text + (f"...({len(value)} bytes)" if len(value) > limit else "")
