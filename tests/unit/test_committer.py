"""Group commit and the failure policy, driven through the in-memory filesystem.

``MemFileSystem`` knows what a power cut would keep (``crash()``), can fail the Nth
fsync and can run out of space; the subclasses here add a gate that holds an fsync
open, so a test can queue writes behind a commit group that is in flight.
"""

from __future__ import annotations

import errno
import os
import random
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack
import pytest

from storage import Engine, EngineFailedError, Op, Outcome
from storage.format import encode_frame
from storage.fs import FileHandle
from storage.testing.memfs import MemFileSystem
from tests.unit.storage_util import (
    Write,
    apply,
    frame_spans,
    opened,
    options,
    read,
    segment_paths,
    states_of,
)

ROOT = "/db"
WAIT = 10.0
"""Seconds to wait for something that should take milliseconds (a hang fails, not blocks)."""


class GatedFs(MemFileSystem):
    """Holds the next fsync (file or directory) until the returned event is set."""

    def __init__(self) -> None:
        super().__init__()
        self._gate: threading.Event | None = None
        self.blocked = threading.Event()

    def hold_next_sync(self) -> threading.Event:
        gate = threading.Event()
        self.blocked.clear()
        self._gate = gate
        return gate

    def _before_sync(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            self.blocked.set()
            gate.wait(WAIT)
        super()._before_sync()


class Waiter:
    """A waiter for the default sink (which calls ``deliver``)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.outcome: Outcome | None = None

    def deliver(self, outcome: Outcome, result: object = None) -> None:
        self.outcome = outcome
        self.event.set()

    def result(self) -> Outcome | None:
        assert self.event.wait(WAIT), "the commit group was never completed"
        return self.outcome


def submit(engine: Engine, op: Op, key: bytes, value: bytes | None = None) -> Waiter:
    waiter = Waiter()
    engine.submit(op, key, value, waiter)
    return waiter


def used(fs: MemFileSystem) -> int:
    return sum(len(data) for data in fs.files().values())


def wal_files(fs: MemFileSystem) -> list[str]:
    return sorted(p for p in fs.files() if p.endswith(".wal"))


def recovered(image: MemFileSystem) -> dict[bytes, bytes]:
    with opened(ROOT, options(), fs=image) as engine:
        return dict(engine.table)


def assert_replays(fs: MemFileSystem, table: dict[bytes, bytes], frames: int) -> None:
    """Recovery of ``fs`` gives ``table`` from ``frames`` WAL frames (one per group)."""
    with opened(ROOT, options(), fs=fs) as again:
        assert again.table == table
        assert again.recovery_report.frames_replayed == frames


# -- group semantics ----------------------------------------------------------------------


class RecordingSink:
    """Records each group's waiters, outcome and what readers saw at that moment."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.calls: list[tuple[list[Any], Outcome, dict[bytes, bytes]]] = []
        self.done = threading.Event()
        self.expect = -1

    def __call__(self, waiters: Sequence[Any], outcome: Outcome, results: object) -> None:
        assert self.engine is not None
        self.calls.append((list(waiters), outcome, dict(self.engine.table)))
        if self.expect in waiters:
            self.done.set()


def recording_engine(fs: MemFileSystem, **opts: Any) -> tuple[Engine, RecordingSink]:
    """An engine on ``fs`` whose groups a ``RecordingSink`` records."""
    sink = RecordingSink()
    engine = Engine.open(ROOT, options(**opts), fs=fs, sink=sink)
    sink.engine = engine
    return engine, sink


def test_writes_queued_during_fsync_commit_as_one_group() -> None:
    fs = GatedFs()
    engine, sink = recording_engine(fs)
    writes: list[Write] = [(Op.PUT, b"first", b"0")]
    writes += [(Op.PUT, b"k%d" % (i % 7), b"v%d" % i) for i in range(1, 41)]
    writes += [
        (Op.DELETE, b"k3", None),
        (Op.PUT, b"k4", b"last"),
        (Op.CLEAR, b"", None),
        (Op.PUT, b"k5", b"after-clear"),
    ]
    sink.expect = len(writes) - 1
    try:
        gate = fs.hold_next_sync()
        engine.submit(*writes[0], 0)
        assert fs.blocked.wait(WAIT)
        for i, write in enumerate(writes[1:], 1):
            engine.submit(*write, i)
        # Nothing is visible while the first group's fsync is in flight.
        assert engine.table == {}
        assert sink.calls == []
        gate.set()
        assert sink.done.wait(WAIT)
    finally:
        engine.close()

    states = states_of(writes)
    assert sink.calls == [
        ([0], Outcome.OK, states[1]),
        (list(range(1, len(writes))), Outcome.OK, states[-1]),
    ]
    assert states[-1] == {b"k5": b"after-clear"}
    stats = engine.stats()
    assert (stats.groups, stats.records, stats.max_group) == (
        2,
        len(writes),
        len(writes) - 1,
    )
    # One frame per group on disk, in the same order.
    assert_replays(fs, states[-1], frames=2)


def test_group_size_is_capped_in_bytes() -> None:
    fs = GatedFs()
    engine, sink = recording_engine(fs, group_max_bytes=200)
    # Every write is 50 key+value bytes: a group closes once it reaches 200.
    writes: list[Write] = [(Op.PUT, b"%02d" % i, b"%048d" % i) for i in range(22)]
    sink.expect = 21
    try:
        gate = fs.hold_next_sync()
        engine.submit(*writes[0], 0)
        assert fs.blocked.wait(WAIT)
        for i, write in enumerate(writes[1:], 1):
            engine.submit(*write, i)
        gate.set()
        assert sink.done.wait(WAIT)
    finally:
        engine.close()

    states = states_of(writes)
    groups = [
        [0],
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10, 11, 12],
        [13, 14, 15, 16],
        [17, 18, 19, 20],
        [21],
    ]
    assert sink.calls == [(g, Outcome.OK, states[g[-1] + 1]) for g in groups]


def test_batches_handed_over_during_fsync_commit_as_one_group_in_order() -> None:
    fs = GatedFs()
    engine, sink = recording_engine(fs)
    writes: list[Write] = [(Op.PUT, b"k%d" % (i % 5), b"v%d" % i) for i in range(30)]
    writes[12] = (Op.DELETE, b"k2", None)
    writes[20] = (Op.CLEAR, b"", None)
    sink.expect = 29
    try:
        gate = fs.hold_next_sync()
        engine.submit_batch([(*writes[0], 0), (*writes[1], 1)])
        assert fs.blocked.wait(WAIT)
        # Three batches arrive while the first one's fsync is in flight.
        for lo, hi in ((2, 9), (9, 10), (10, 30)):
            engine.submit_batch([(*writes[i], i) for i in range(lo, hi)])
        assert engine.table == {}
        gate.set()
        assert sink.done.wait(WAIT)
    finally:
        engine.close()

    states = states_of(writes)
    assert sink.calls == [
        ([0, 1], Outcome.OK, states[2]),
        (list(range(2, 30)), Outcome.OK, states[30]),
    ]
    assert_replays(fs, states[30], frames=2)


def test_a_batch_over_the_byte_cap_is_split_into_capped_groups() -> None:
    fs = MemFileSystem()
    engine, sink = recording_engine(fs, group_max_bytes=200)
    # 50 key+value bytes each, one DELETE (2 bytes) in the middle: groups close at 200.
    writes: list[Write] = [(Op.PUT, b"%02d" % i, b"%048d" % i) for i in range(11)]
    writes[5] = (Op.DELETE, b"02", None)
    sink.expect = 10
    try:
        engine.submit_batch([(*write, i) for i, write in enumerate(writes)])
        assert sink.done.wait(WAIT)
    finally:
        engine.close()

    states = states_of(writes)
    groups = [[0, 1, 2, 3], [4, 5, 6, 7, 8], [9, 10]]
    assert sink.calls == [(g, Outcome.OK, states[g[-1] + 1]) for g in groups]
    assert recovered(fs.crash()) == states[-1]


def test_a_batch_with_one_bad_write_is_refused_whole() -> None:
    fs = MemFileSystem()
    with opened(ROOT, options(), fs=fs) as engine:
        waiter = Waiter()
        with pytest.raises(TypeError):
            engine.submit_batch([(Op.PUT, b"good", b"1", waiter),
                                 (Op.PUT, b"bad", "text", Waiter())])
        assert engine.write(Op.PUT, b"after", b"2") is Outcome.OK
        assert not waiter.event.is_set()
    assert recovered(fs.crash()) == {b"after": b"2"}


# -- failures -------------------------------------------------------------------------


def test_fsync_failure_is_sticky_and_never_retried() -> None:
    fs = GatedFs()
    engine = Engine.open(ROOT, options(), fs=fs)
    try:
        assert engine.write(Op.PUT, b"a", b"1") is Outcome.OK
        assert engine.write(Op.PUT, b"b", b"2") is Outcome.OK
        gate = fs.hold_next_sync()
        lost = submit(engine, Op.PUT, b"x", b"never durable")
        assert fs.blocked.wait(WAIT)
        behind = [submit(engine, Op.PUT, b"y", b"queued"), submit(engine, Op.DELETE, b"a")]
        syncs = fs.syncs
        fs.fail_sync_at = 1
        gate.set()

        assert lost.result() is Outcome.FAILED
        assert [w.result() for w in behind] == [Outcome.FAILED, Outcome.FAILED]
        assert fs.syncs == syncs + 1
        assert engine.failed is not None and engine.failed.startswith("WAL write/fsync failed")
        with pytest.raises(EngineFailedError):
            engine.submit(Op.PUT, b"z", b"1", Waiter())
        with pytest.raises(EngineFailedError):
            engine.write(Op.CLEAR)
        # Reads keep serving the committed state; nothing of the failed groups shows.
        assert engine.table == {b"a": b"1", b"b": b"2"}
        engine.checkpoint()  # refused quietly: the log can no longer be trusted
    finally:
        engine.close()
    assert fs.syncs == syncs + 1
    assert not any(p.endswith(".snap") for p in fs.files())
    assert recovered(fs.crash()) == {b"a": b"1", b"b": b"2"}
    # Restart without power loss: the frame whose fsync failed was cut back, so the
    # write that was answered "storage unavailable" does not come back either.
    assert recovered(fs) == {b"a": b"1", b"b": b"2"}


def test_fsync_failure_while_rotating_fails_engine_after_ack() -> None:
    fs = MemFileSystem()
    value = b"v" * 1000
    frame = len(encode_frame(1, [(int(Op.PUT), b"k1", value)]))
    per_segment = -(-(4096 - 24) // frame)  # the write that reaches 4096 rotates
    engine = Engine.open(ROOT, options(segment_bytes=4096), fs=fs)
    try:
        for i in range(per_segment - 1):
            assert engine.write(Op.PUT, b"k%d" % i, value) is Outcome.OK
        fs.fail_sync_at = 2  # 1: this write's own fdatasync, 2: the new segment's
        assert engine.write(Op.PUT, b"k%d" % (per_segment - 1), value) is Outcome.OK
        engine.checkpoint()  # a barrier: runs on the committer after the rotation
        assert engine.failed is not None and engine.failed.startswith("WAL rotation failed")
        with pytest.raises(EngineFailedError):
            engine.write(Op.PUT, b"more", b"1")
        assert len(engine) == per_segment
    finally:
        engine.close()
    assert wal_files(fs) == [f"{ROOT}/wal/0000000000000001.wal"]
    assert recovered(fs.crash()) == {b"k%d" % i: value for i in range(per_segment)}


def test_no_space_rolls_back_group_and_engine_keeps_serving() -> None:
    fs = GatedFs()
    engine = Engine.open(ROOT, options(segment_bytes=4096), fs=fs)
    expected: dict[bytes, bytes] = {}
    try:
        for i in range(5):
            assert engine.write(Op.PUT, b"k%d" % i, b"small %d" % i) is Outcome.OK
            expected[b"k%d" % i] = b"small %d" % i
        [segment] = wal_files(fs)
        before = fs.files()[segment]

        gate = fs.hold_next_sync()
        held = submit(engine, Op.PUT, b"held", b"fits")
        assert fs.blocked.wait(WAIT)
        fs.space_limit = used(fs) + 100
        group = [
            submit(engine, Op.PUT, b"g1", b"x"),
            submit(engine, Op.DELETE, b"k0"),
            submit(engine, Op.PUT, b"big", b"B" * 8000),
            submit(engine, Op.CLEAR, b""),
        ]
        gate.set()
        assert held.result() is Outcome.OK
        expected[b"held"] = b"fits"
        assert [w.result() for w in group] == [Outcome.NO_SPACE] * 4

        assert engine.failed is None
        assert engine.table == expected
        assert engine.last_lsn == 6
        # Cut back to the last good frame: the partial frame and the preallocated
        # zeros are gone, the frames before are byte for byte what they were.
        data = fs.files()[segment]
        spans = frame_spans(data)
        assert len(spans) == 6 and spans[-1][1] == len(data)
        assert data[: spans[4][1]] == before[: spans[4][1]]

        # Space is still short, but a small write fits again (its LSN is reused).
        assert engine.write(Op.PUT, b"tiny", b"t") is Outcome.OK
        expected[b"tiny"] = b"t"
        assert engine.write(Op.PUT, b"big", b"B" * 8000) is Outcome.NO_SPACE
        fs.space_limit = None
        assert engine.write(Op.PUT, b"big", b"B" * 8000) is Outcome.OK
        expected[b"big"] = b"B" * 8000
        assert engine.last_lsn == 8
        image = fs.crash()
    finally:
        engine.close()
    with opened(ROOT, options(), fs=image) as again:
        assert again.table == expected
        assert again.recovery_report.last_lsn == 8


class FullSnapshotFs(MemFileSystem):
    """Snapshot files cannot be written while ``full`` is set (the WAL still can)."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def create(self, path: str) -> Any:
        handle = super().create(path)
        return _NoSpaceFile(handle) if self.full and path.endswith(".snap.tmp") else handle


class _NoSpaceFile:
    def __init__(self, inner: FileHandle) -> None:
        self._inner = inner

    def write_at(self, offset: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_checkpoint_without_space_fails_alone_and_writes_continue() -> None:
    fs = FullSnapshotFs()
    engine = Engine.open(ROOT, options(checkpoint_on_close=True), fs=fs)
    try:
        assert engine.write(Op.PUT, b"a", b"1") is Outcome.OK
        fs.full = True
        with pytest.raises(OSError) as info:
            engine.checkpoint()
        assert info.value.errno == errno.ENOSPC
        assert engine.failed is None
        # The committer is still there: the next write completes.
        assert submit(engine, Op.PUT, b"b", b"2").result() is Outcome.OK
        fs.full = False
        engine.checkpoint()
        assert submit(engine, Op.PUT, b"c", b"3").result() is Outcome.OK
        fs.full = True  # the checkpoint on close fails too; close still completes
    finally:
        engine.close()
    # The snapshots that did not fit left no partial files taking up space.
    assert sorted(p for p in fs.files() if "/snap/" in p) == [f"{ROOT}/snap/0000000000000002.snap"]
    with opened(ROOT, options(), fs=fs.crash()) as again:
        assert again.table == {b"a": b"1", b"b": b"2", b"c": b"3"}
        assert again.recovery_report.snapshot_lsn == 2


@pytest.mark.parametrize(
    "call",
    [
        (Op.PUT, b"k", None),
        (Op.PUT, "text key", b"v"),
        (Op.PUT, b"k", "text value"),
        (Op.PUT, b"k", bytearray(b"mutable")),
        (Op.DELETE, "text key", None),
    ],
)
def test_write_the_log_could_not_replay_is_refused_up_front(call: tuple[Any, Any, Any]) -> None:
    fs = MemFileSystem()
    with opened(ROOT, options(), fs=fs) as engine:
        assert engine.write(Op.PUT, b"before", b"1") is Outcome.OK
        with pytest.raises(TypeError):
            engine.write(*call)
        assert engine.write(Op.PUT, b"after", b"2") is Outcome.OK
    assert recovered(fs.crash()) == {b"before": b"1", b"after": b"2"}


# -- power loss -----------------------------------------------------------------------


class CrashAtEverySync(MemFileSystem):
    """Keeps the image a power cut would leave just before every fsync."""

    def __init__(self) -> None:
        super().__init__()
        self.acked = 0
        self.images: list[tuple[int, MemFileSystem]] = []

    def _before_sync(self) -> None:
        self.images.append((self.acked, self.crash()))
        super()._before_sync()


def test_power_loss_at_any_sync_keeps_exactly_the_acknowledged_writes() -> None:
    rng = random.Random(7)
    fs = CrashAtEverySync()
    writes: list[Write] = []
    with opened(ROOT, options(segment_bytes=1024), fs=fs) as engine:
        for i in range(150):
            roll = rng.random()
            key = b"k%d" % rng.randrange(12)
            write: Write = (
                (Op.CLEAR, b"", None)
                if roll < 0.03
                else (Op.DELETE, key, None)
                if roll < 0.25
                else (Op.PUT, key, b"%d-" % i * rng.randrange(1, 40))
            )
            assert engine.write(*write) is Outcome.OK
            writes.append(write)
            fs.acked += 1
            if i % 40 == 39:
                engine.checkpoint()
    states = states_of(writes)
    assert len(fs.images) > len(writes) + 20  # every write, plus rotations and checkpoints
    assert any("/snap/" in p for _, image in fs.images for p in image.files())
    for acked, image in fs.images:
        table = recovered(image)
        # Every acknowledged write is there; the one in flight may or may not be.
        assert table in (states[acked], states[min(acked + 1, len(writes))]), acked
    assert recovered(fs.crash()) == states[-1]


def test_group_in_flight_at_power_loss_is_absent() -> None:
    fs = GatedFs()
    engine = Engine.open(ROOT, options(), fs=fs)
    try:
        assert engine.write(Op.PUT, b"a", b"1") is Outcome.OK
        assert engine.write(Op.PUT, b"b", b"1") is Outcome.OK
        gate = fs.hold_next_sync()
        first = submit(engine, Op.PUT, b"a", b"2")
        assert fs.blocked.wait(WAIT)
        second = [submit(engine, Op.DELETE, b"b"), submit(engine, Op.PUT, b"c", b"3")]
        # The first group's frame is written but not synced.
        mid_sync = fs.crash()
        assert engine.get(b"a") == b"1"
        gate.set()
        assert [first.result()] + [w.result() for w in second] == [Outcome.OK] * 3
        after = fs.crash()
    finally:
        engine.close()
    assert recovered(mid_sync) == {b"a": b"1", b"b": b"1"}
    assert recovered(after) == {b"a": b"2", b"c": b"3"}


# -- concurrency ---------------------------------------------------------------------------


def test_concurrent_writers_log_matches_table(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    threads_n, per_thread = 8, 150
    submitted: list[list[Write]] = [[] for _ in range(threads_n)]
    outcomes: list[list[Outcome]] = [[] for _ in range(threads_n)]
    engine = Engine.open(root, options(segment_bytes=4096))
    start = threading.Barrier(threads_n)

    def worker(t: int) -> None:
        rng = random.Random(t)
        start.wait()
        for i in range(per_thread):
            key = b"key%d" % rng.randrange(20)
            roll = rng.random()
            write: Write = (
                (Op.CLEAR, b"", None)
                if roll < 0.01
                else (Op.DELETE, key, None)
                if roll < 0.15
                else (Op.PUT, key, b"t%d-%d" % (t, i))
            )
            outcomes[t].append(engine.write(*write))
            submitted[t].append(write)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    try:
        assert all(o == [Outcome.OK] * per_thread for o in outcomes)
        table = dict(engine.table)
        stats = engine.stats()
    finally:
        engine.close()
    assert stats.records == threads_n * per_thread

    # Read the log back with nothing but the documented format.
    log: list[Write] = []
    for path in segment_paths(root):
        data = read(path)
        for start_, end in frame_spans(data):
            first_lsn, ops, keys, values, _, _ = msgpack.unpackb(data[start_ + 8 : end], raw=False)
            assert first_lsn == len(log) + 1
            rows = zip(ops, keys, values, strict=True)
            log.extend((Op(op), key, value) for op, key, value in rows)
    assert Counter(log) == Counter(w for s in submitted for w in s)
    for t in range(threads_n):
        # Each thread waited for every write: its writes are in the log in its order.
        mine = [
            w for w in log if w[0] is Op.PUT and w[2] is not None and w[2].startswith(b"t%d-" % t)
        ]
        assert mine == [w for w in submitted[t] if w[0] is Op.PUT]
    model: dict[bytes, bytes] = {}
    for write in log:
        apply(model, write)
    assert model == table
    written: dict[bytes, set[bytes]] = {}
    for op, key, value in log:
        if op is Op.PUT and value is not None:
            written.setdefault(key, set()).add(value)
    assert all(value in written[key] for key, value in table.items())

    with opened(root, options(segment_bytes=4096)) as engine:
        assert engine.table == table
    assert os.path.isdir(root)
