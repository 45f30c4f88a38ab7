"""The committed state readers see: values, expiry deadlines, and the keys in byte order.

Theory of operation
-------------------
One thread changes a ``Keyspace``: the committer, after each synced group (recovery
before it, while replaying). Every change goes through ``apply``, one rule for both.
Readers on other threads only look up single keys (``values.get``, ``expires.get``),
which are atomic; anything that reads many keys at once (a listing page, the expiry
sweep, a snapshot) runs on the committer thread between groups, so it sees the state
after one whole group and never half of a transaction.

Expiry. A key may carry a deadline (ms since the epoch) in ``expires``; keys without
one cost nothing there. A key whose deadline has passed is invisible: reads answer
not-found, evaluation treats it as absent, listings skip it. Its memory (and a DELETE
in the log, so that no clock step can bring it back) follow when the committer next
touches it or when the sweep finds it in ``_deadlines``, a heap of (deadline, key)
with stale entries skipped. Time is ``now_ms``: the wall clock, but never earlier than
the commit time of any group in the log, so once the sweep has logged a key's DELETE
(within a tenth of a second) no clock step can make it visible again; a clock that
steps back further than that inside that tenth of a second can, until the sweep runs.

Order. ``order`` holds keys in byte order for listings (a ``SortedList``, ~2.6 us per
insertion here). Keeping it current on every write would cost a busy server that never
lists a tenth of its write throughput, so a group only notes keys that may be new, in
``_fresh`` (one C-level ``extend``), and deletions of keys in ``order`` in ``_gone``;
``catch_up`` folds them in when a listing needs the order, so only listings pay for
it; after a bulk load (more notes than a quarter of the keys) it sorts every key
again instead, one C call. Both notes are pruned so they never outgrow the
keyspace.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sortedcontainers import SortedList

from storage.format import Op

_PUT, _DELETE, _CLEAR, _EXPIRE = Op.PUT, Op.DELETE, Op.CLEAR, Op.EXPIRE  # bound once


REBUILD_MIN = 50_000
"""Below this many noted changes, folding them in beats sorting every key again."""


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the system clock."""
    return time.time_ns() // 1_000_000


class Keyspace:
    """The committed table with expiry and order (see the module docstring)."""

    def __init__(self, values: dict[bytes, bytes] | None = None,
                 expires: dict[bytes, int] | None = None, clock_floor: int = 0, *,
                 values_sorted: bool = False) -> None:
        self.values: dict[bytes, bytes] = values if values is not None else {}
        """key -> value. Never rebound, so readers may keep a reference to it."""
        self.expires: dict[bytes, int] = expires if expires is not None else {}
        """key -> deadline (ms since the epoch), for keys that have one. Never rebound."""
        self.clock_floor = clock_floor
        """The latest commit time seen (ms): ``now_ms`` never goes below it."""
        self.clock: Callable[[], int] | None = None
        """The wall clock (ms since the epoch); None: ``wall_clock_ms``."""
        self._deadlines: list[tuple[int, bytes]] = [(d, k) for k, d in self.expires.items()]
        heapq.heapify(self._deadlines)
        self.order: SortedList[bytes] = _sorted_list(self.values, values_sorted)
        self._fresh: list[bytes] = []
        self._gone: list[bytes] = []
        self.watchers: dict[bytes, set[int]] = {}
        """Watched keys (Redis's WATCH) -> the watchers' ids. Not persisted: a watch
        lives as long as its connection."""
        self.watching: dict[int, set[bytes]] = {}
        """Watcher id -> the keys it watches."""
        self.dirty: set[int] = set()
        """Watchers one of whose keys a write touched since they began watching it."""

    def __len__(self) -> int:
        return len(self.values)

    # -- time and visibility --------------------------------------------------------------
    def now_ms(self) -> int:
        """The clock expiry is judged by (see the module docstring)."""
        now = wall_clock_ms() if self.clock is None else self.clock()
        return now if now > self.clock_floor else self.clock_floor

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` unless it is absent or expired (any thread)."""
        value = self.values.get(key)
        if value is not None and self.expires:
            deadline = self.expires.get(key)
            if deadline is not None and deadline <= self.now_ms():
                return None
        return value

    def deadline(self, key: bytes) -> int | None:
        """When ``key`` expires (ms since the epoch), or None if it does not."""
        return self.expires.get(key)

    def live(self, key: bytes, now: int) -> bool:
        """``key`` holds a value that has not expired at ``now``."""
        if key not in self.values:
            return False
        deadline = self.expires.get(key)
        return deadline is None or deadline > now

    # -- changes (committer thread, or recovery) ------------------------------------------
    def apply(self, ops: bytes, keys: Sequence[bytes], values: Sequence[bytes | None],
              deadlines: Sequence[int | None] | None, time_ms: int,
              touch: bool = True) -> None:
        """Apply records (given column-wise, in log order) committed at ``time_ms``."""
        self.clock_floor = max(self.clock_floor, time_ms)
        if touch and self.watchers:
            self._touch(ops, keys)
        table = self.values
        before = len(table)
        if deadlines is None and ops.count(_PUT) == len(ops):
            # The common group, all PUTs: one C-level update, no loop in Python.
            table.update(zip(keys, values, strict=True))  # type: ignore[arg-type]
            if self.expires:
                self._forget_deadlines(keys)
            if len(table) != before:
                self._note_fresh(keys)
            return
        self._apply_mixed(ops, keys, values, deadlines)

    def _apply_mixed(self, ops: bytes, keys: Sequence[bytes], values: Sequence[bytes | None],
                     deadlines: Sequence[int | None] | None) -> None:
        table, expires = self.values, self.expires
        fresh, gone = self._fresh, self._gone
        if deadlines is None:
            deadlines = [None] * len(ops)
        for op, key, value, deadline in zip(ops, keys, values, deadlines, strict=True):
            if op == _PUT:
                if key not in table:
                    fresh.append(key)
                table[key] = value  # type: ignore[assignment]
                self._set_deadline(key, deadline)
            elif op == _DELETE:
                if table.pop(key, None) is not None:
                    gone.append(key)
                    expires.pop(key, None)
            elif op == _EXPIRE:
                if key in table:
                    self._set_deadline(key, deadline)
            else:
                self._clear()
        self._prune_notes()

    def _set_deadline(self, key: bytes, deadline: int | None) -> None:
        if deadline is None:
            if self.expires:
                self.expires.pop(key, None)
            return
        self.expires[key] = deadline
        heapq.heappush(self._deadlines, (deadline, key))

    def _forget_deadlines(self, keys: Sequence[bytes]) -> None:
        expires = self.expires
        for key in expires.keys() & set(keys):
            del expires[key]

    def _touch(self, ops: bytes, keys: Sequence[bytes]) -> None:
        """Mark the watchers of the keys these records change (``touch=False``: the
        group's evaluation did, record by record, in commit order)."""
        for op, key in zip(ops, keys, strict=True):
            if op == _CLEAR:  # touches the watched keys that existed
                for watched, ids in self.watchers.items():
                    if watched in self.values:
                        self.dirty.update(ids)
            elif key in self.watchers:
                self.dirty.update(self.watchers[key])

    def watch(self, watcher: int, key: bytes) -> None:
        """``watcher`` watches ``key`` from now on."""
        self.watchers.setdefault(key, set()).add(watcher)
        self.watching.setdefault(watcher, set()).add(key)

    def unwatch(self, watcher: int) -> None:
        """``watcher`` watches nothing, and is clean again."""
        for key in self.watching.pop(watcher, ()):
            ids = self.watchers.get(key)
            if ids is not None:
                ids.discard(watcher)
                if not ids:
                    del self.watchers[key]
        self.dirty.discard(watcher)

    def _clear(self) -> None:
        self.values.clear()
        self.expires.clear()
        self._deadlines.clear()
        self.order.clear()
        self._fresh.clear()
        self._gone.clear()

    def _note_fresh(self, keys: Sequence[bytes]) -> None:
        self._fresh.extend(keys)
        self._prune_notes()

    def _prune_notes(self) -> None:
        # Notes about keys that are no longer there (or were noted twice) are dropped,
        # so neither list grows past the keyspace however long nobody lists.
        table = self.values
        if len(self._fresh) > 2 * len(table) + 4096:
            self._fresh = [k for k in dict.fromkeys(self._fresh) if k in table]
        if len(self._gone) > len(self.order) // 2 + 4096:
            order = self.order
            self._gone = [k for k in dict.fromkeys(self._gone) if k not in table and k in order]

    # -- the order ------------------------------------------------------------------------
    def catch_up(self) -> None:
        """Fold the noted changes into ``order`` (see the module docstring)."""
        table, order = self.values, self.order
        gone, fresh = self._gone, self._fresh
        if len(fresh) + len(gone) > len(order) // 4 + REBUILD_MIN:
            # One sort in C (~0.7 s for a million keys) beats ~2.6 us per key folded.
            self.order = _sorted_list(sorted(table), already_sorted=True)
        else:
            for key in gone:
                if key not in table:
                    order.discard(key)
            for key in fresh:
                if key in table and key not in order:
                    order.add(key)
        fresh.clear()
        gone.clear()

    def page(self, low: bytes, high: bytes | None, inclusive: bool, limit: int,
             now: int) -> tuple[list[bytes], bool]:
        """Up to ``limit`` live keys from ``low`` (``inclusive``) below ``high``, in order,
        and whether more follow. Call ``catch_up()`` first."""
        found: list[bytes] = []
        more = False
        live = self.live
        for key in self.order.irange(low, high, (inclusive, False)):
            if not live(key, now):
                continue
            if len(found) == limit:
                more = True
                break
            found.append(key)
        return found, more

    # -- expiry ---------------------------------------------------------------------------
    def due(self, now: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose deadline passed at ``now`` (each listed once)."""
        heap, expires = self._deadlines, self.expires
        found: dict[bytes, None] = {}  # a deadline set twice is in the heap twice
        while heap and heap[0][0] <= now and len(found) < limit:
            deadline, key = heapq.heappop(heap)
            if expires.get(key) == deadline:
                found[key] = None
        if len(heap) > 2 * len(expires) + 4096:
            self._deadlines = [(d, k) for k, d in expires.items()]
            heapq.heapify(self._deadlines)
        return list(found)

    def image(self) -> tuple[dict[bytes, bytes], dict[bytes, int], int]:
        """A copy of (values, expires, clock floor), for a snapshot written by a thread."""
        return dict(self.values), dict(self.expires), self.clock_floor


def _sorted_list(keys: Iterable[bytes], already_sorted: bool) -> SortedList[bytes]:
    if not already_sorted:
        return SortedList(keys)
    # A version 2 snapshot stores its keys in ascending order: cut them into the
    # list's sublists directly instead of sorting again (a sort of a million keys
    # costs ~0.2 s even when they are in order, all of it holding the GIL).
    # (SortedList's documented internals: sublists of at most ``_load`` keys, the last
    # key of each in ``_maxes``; tests check the invariants with ``_check()``.)
    ordered = list(keys)
    result: SortedList[bytes] = SortedList()
    raw: Any = result
    load: int = raw._load
    lists = [ordered[i:i + load] for i in range(0, len(ordered), load)]
    raw._lists = lists
    raw._maxes = [sub[-1] for sub in lists]
    raw._len = len(ordered)
    return result
