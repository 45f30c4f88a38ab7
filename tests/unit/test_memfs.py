"""The recording in-memory filesystem: journal, replay, and the states a power cut leaves.

The power-loss explorer trusts ``MemFileSystem`` to say what survives a cut, so its
model is pinned down here call by call: data needs a sync of its file, a name needs
a sync of its directory, and a ``PowerCut`` keeps or tears exactly what it names.
"""

from __future__ import annotations

import random

from storage import Op, Outcome
from storage.testing.memfs import FsOpKind, MemFileSystem, PowerCut
from tests.unit.storage_util import opened, options


def _durable_file(fs: MemFileSystem, path: str, data: bytes) -> None:
    handle = fs.create(path)
    handle.write_at(0, data)
    handle.sync()
    fs.sync_dir("/d")


def test_unsynced_write_is_pending_until_its_file_is_synced() -> None:
    fs = MemFileSystem()
    fs.makedirs("/d")
    _durable_file(fs, "/d/f", b"old")
    handle = fs.open_write("/d/f")
    handle.write_at(3, b"-new")
    assert [op.kind for op in fs.pending()] == [FsOpKind.WRITE]
    assert fs.crash().read_bytes("/d/f") == b"old"
    handle.sync()
    assert fs.pending() == []
    assert fs.crash().read_bytes("/d/f") == b"old-new"


def test_create_and_rename_are_lost_without_a_directory_fsync() -> None:
    fs = MemFileSystem()
    fs.makedirs("/d")
    _durable_file(fs, "/d/a", b"a")
    handle = fs.create("/d/b")
    handle.write_at(0, b"b")
    handle.sync()
    fs.rename("/d/a", "/d/c")
    assert fs.crash().files() == {"/d/a": b"a"}
    fs.sync_dir("/d")
    assert fs.crash().files() == {"/d/b": b"b", "/d/c": b"a"}


def test_power_cut_keeps_only_the_named_unsynced_ops() -> None:
    fs = MemFileSystem()
    fs.makedirs("/d")
    _durable_file(fs, "/d/f", b"0123456789")
    handle = fs.open_write("/d/f")
    handle.write_at(0, b"AB")
    handle.write_at(5, b"XYZ")
    first, second = fs.pending()
    assert fs.crash(PowerCut(keep=frozenset({second.seq}))).read_bytes("/d/f") == b"01234XYZ89"
    kept_both = fs.crash(PowerCut(keep=frozenset({first.seq, second.seq})))
    assert kept_both.read_bytes("/d/f") == b"AB234XYZ89"


def test_power_cut_tears_the_last_write_to_a_prefix_or_garbage() -> None:
    fs = MemFileSystem()
    fs.makedirs("/d")
    _durable_file(fs, "/d/f", b"")
    fs.open_write("/d/f").write_at(0, b"frame-bytes")
    (write,) = fs.pending()
    assert fs.crash(PowerCut(torn={write.seq: b"fra"})).read_bytes("/d/f") == b"fra"
    assert fs.crash(PowerCut(torn={write.seq: b"\xff\x00"})).read_bytes("/d/f") == b"\xff\x00"


def test_crash_image_is_wholly_durable_and_can_be_crashed_again() -> None:
    fs = MemFileSystem()
    fs.makedirs("/d")
    handle = fs.create("/d/f")
    handle.write_at(0, b"x")
    image = fs.crash(PowerCut(keep=frozenset(op.seq for op in fs.pending())))
    assert image.files() == {"/d/f": b"x"}
    assert image.pending() == []
    assert image.crash().files() == {"/d/f": b"x"}


def test_replaying_an_engine_journal_rebuilds_every_prefix() -> None:
    fs = MemFileSystem(record=True)
    rng = random.Random(3)
    with opened("/db", options(segment_bytes=512), fs=fs) as engine:
        for i in range(60):
            key = b"k%d" % rng.randrange(5)
            assert engine.write(Op.PUT, key, b"v%d" % i * rng.randrange(1, 30)) is Outcome.OK
            if i % 20 == 19:
                engine.checkpoint()
    assert fs.journal is not None
    assert MemFileSystem.replay(fs.journal).files() == fs.files()
    assert MemFileSystem.replay(fs.journal).crash().files() == fs.crash().files()
    half = len(fs.journal) // 2
    prefix = MemFileSystem.replay(fs.journal[:half])
    assert [op.seq for op in prefix.pending()] == sorted(op.seq for op in prefix.pending())
    assert all(op.seq < half for op in prefix.pending())
