"""When to checkpoint (a pure policy), and a real forked checkpoint that recovery uses."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from storage import CheckpointMode, CheckpointPolicy, Engine, Op, Outcome
from storage.fs import OsFileSystem
from storage.snapshot import read_snapshot
from storage.snapshot_writer import CheckpointResult, ForkReaper
from storage.testing import MemFileSystem
from tests.unit.storage_util import Write, opened, options, snap_dir, states_of

# (threshold in WAL bytes, WAL bytes since the last snapshot, checkpoint running, due?)
CASES = [
    (0, 0, False, False),  # 0 disables automatic checkpoints...
    (0, 10**12, False, False),  # ...however much WAL there is
    (1, 0, False, False),
    (1, 1, False, True),
    (4096, 0, False, False),
    (4096, 4095, False, False),
    (4096, 4096, False, True),  # the threshold itself is enough
    (4096, 4097, False, True),
    (4096, 10**12, False, True),
    (4096, 4096, True, False),  # never two at once
    (4096, 10**12, True, False),
    (4096, -100, False, False),  # after recovery the counter may start below zero
]


@pytest.mark.parametrize(("threshold", "since", "running", "due"), CASES)
def test_checkpoint_policy_table(threshold: int, since: int, running: bool, due: bool) -> None:
    assert CheckpointPolicy(threshold).due(since, running) is due


def test_checkpoint_policy_is_pure() -> None:
    policy = CheckpointPolicy(100)
    answers = [policy.due(150, False) for _ in range(3)] + [policy.due(150, True)]
    assert answers == [True, True, True, False]
    assert policy == CheckpointPolicy(100)


def test_fork_checkpoint_snapshot_is_used_by_recovery(tmp_path: Path) -> None:
    root = str(tmp_path / "db")
    writes: list[Write] = []
    for i in range(120):
        if i % 9 == 8:
            writes.append((Op.DELETE, b"key%02d" % (i % 17), None))
        else:
            writes.append((Op.PUT, b"key%02d" % (i % 23), (b"%03d" % i) * 40))
    states = states_of(writes)
    opts = options(segment_bytes=4096, checkpoint_bytes=2048)
    assert opts.checkpoint_mode is CheckpointMode.FORK

    engine = Engine.open(root, opts)
    try:
        assert engine.options.checkpoint_mode is CheckpointMode.FORK
        for op, key, value in writes:
            assert engine.write(op, key, value) is Outcome.OK
        assert len(reaper_threads()) == 1  # however many checkpoints ran
    finally:
        engine.close()  # waits for a running checkpoint; writes none of its own
    assert reaper_threads() == []
    checkpoints = engine.stats().checkpoints
    assert checkpoints.completed >= 2
    assert checkpoints.failed == 0

    snaps = sorted(n for n in os.listdir(snap_dir(root)) if n.endswith(".snap"))
    assert snaps and not any(n.endswith(".tmp") for n in os.listdir(snap_dir(root)))
    for name in snaps:
        # Each child wrote the copy-on-write image of exactly one LSN.
        lsn = int(name[:16], 16)
        snapshot = read_snapshot(OsFileSystem(), os.path.join(snap_dir(root), name), lsn)
        assert snapshot.values == states[lsn]

    with opened(root, opts) as again:
        report = again.recovery_report
        newest = int(snaps[-1][:16], 16)
        assert report.snapshot == os.path.join(snap_dir(root), snaps[-1])
        assert report.snapshot_lsn == newest
        assert report.records_replayed == len(writes) - newest
        assert again.table == states[-1]


def reaper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "walkv-checkpoint-reaper"]


def test_fork_reaper_reports_every_child_from_one_thread() -> None:
    results: list[tuple[CheckpointResult, str]] = []

    def done(result: CheckpointResult) -> None:
        results.append((result, threading.current_thread().name))

    reaper = ForkReaper()
    try:
        for lsn, status in ((7, 0), (9, 3), (12, 0)):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os._exit(status)
            reaper.watch(pid, lsn, done)
    finally:
        reaper.stop()  # returns once every child handed over is reaped
    assert results == [
        (CheckpointResult(7, True), "walkv-checkpoint-reaper"),
        (CheckpointResult(9, False, "checkpoint child exited with status 3"),
         "walkv-checkpoint-reaper"),
        (CheckpointResult(12, True), "walkv-checkpoint-reaper"),
    ]


def test_a_snapshot_that_did_not_fit_covers_nothing_and_the_next_one_does() -> None:
    fs = MemFileSystem()
    with opened("/db", options(segment_bytes=4096), fs=fs) as engine:
        for i in range(10):
            assert engine.write(Op.PUT, b"k%d" % i, b"v" * 1000) is Outcome.OK
        written = engine.stats().checkpoints.wal_bytes_since_snapshot
        assert written > 10_000
        fs.space_limit = sum(len(d) for d in fs.files().values()) + 1000
        with pytest.raises(OSError):
            engine.checkpoint()
        failed = engine.stats().checkpoints
        # The WAL still holds everything since the last snapshot: the policy must see it.
        assert (failed.completed, failed.wal_bytes_since_snapshot) == (0, written)
        fs.space_limit = None
        engine.checkpoint()
        done = engine.stats().checkpoints
        assert (done.completed, done.wal_bytes_since_snapshot) == (1, 0)
