"""The crash harness's file damage says truthfully what it destroyed and what must follow.

A history is written by the engine one record per frame, with two checkpoints so that
the WAL no longer reaches LSN 1. Each kind of damage is inflicted on a copy; then
recovery (the engine's own) must do what ``Damage.expect`` says, and lose exactly the
records ``Damage.removed`` lists. If this did not hold, the crash harness would blame
a correct server, or excuse a broken one.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.crash.damage import Damage, DamageKind, Expect, inflict, newest_segment_lsn
from storage import CorruptionError, Op, RecoveryMode
from storage.fs import OsFileSystem
from storage.recovery import recover
from tests.unit.storage_util import History, Write, opened, options, states_of, write_all

SEEDS = range(6)


def _writes(count: int) -> list[Write]:
    rng = random.Random(11)
    writes: list[Write] = []
    for i in range(count):
        key = b"k%d" % rng.randrange(8)
        roll = rng.random()
        if roll < 0.05:
            writes.append((Op.CLEAR, b"", None))
        elif roll < 0.3:
            writes.append((Op.DELETE, key, None))
        else:
            writes.append((Op.PUT, key, b"%d:" % i + rng.randbytes(rng.randrange(20, 200))))
    return writes


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """60 writes: snapshots at LSN 15 and 30, several segments after the newest one."""
    root = str(tmp_path_factory.mktemp("damage") / "db")
    writes = _writes(60)
    with opened(root, options(segment_bytes=1024)) as engine:
        for part in (writes[:15], writes[15:30]):
            write_all(engine, part)
            engine.checkpoint()
        write_all(engine, writes[30:])
    return History(root, writes, states_of(writes), [], {})


def _recovered(root: Path, mode: RecoveryMode = RecoveryMode.STRICT) -> dict[bytes, bytes]:
    return recover(OsFileSystem(), str(root), mode).keyspace.values


def _records(writes: list[Write]) -> list[tuple[int, bytes, bytes | None]]:
    return [(int(op), key, value) for op, key, value in writes]


def _damaged(history: History, tmp_path: Path, kind: DamageKind, seed: int) -> tuple[Path, Damage]:
    root = Path(history.copy(str(tmp_path / "copy")))
    damage = inflict(kind, root, random.Random(seed), since_lsn=31)
    assert damage is not None, f"{kind.value} found nothing to damage"
    return root, damage


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", [DamageKind.TAIL_TRUNCATE, DamageKind.TAIL_ZEROS,
                                  DamageKind.TAIL_GARBAGE, DamageKind.TAIL_BITFLIP])
def test_torn_tail_damage_recovers_everything_but_the_removed_frame(
    history: History, tmp_path: Path, kind: DamageKind, seed: int
) -> None:
    root, damage = _damaged(history, tmp_path, kind, seed)
    assert damage.expect is Expect.RECOVER
    kept = len(history.writes) - len(damage.removed)
    assert damage.removed == _records(history.writes[kept:])
    assert len(damage.removed) <= 1  # one record per frame here: at most the last one
    assert _recovered(root) == history.states[kept]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", [DamageKind.FRAME_BITFLIP, DamageKind.MISSING_SEGMENT])
def test_damage_before_the_tail_is_refused_then_recovered_as_a_prefix(
    history: History, tmp_path: Path, kind: DamageKind, seed: int
) -> None:
    root, damage = _damaged(history, tmp_path, kind, seed)
    assert damage.expect is Expect.REFUSE_THEN_PREFIX and damage.refusal is not None
    with pytest.raises(CorruptionError) as refused:
        _recovered(root)
    exc = refused.value
    assert damage.refusal.explained_by(f"corruption in {exc.path} at byte {exc.offset}: x")
    first = damage.removed_first_lsn
    assert first is not None and first >= 31
    assert damage.removed == _records(history.writes[first - 1 :])
    assert _recovered(root, RecoveryMode.POINT_IN_TIME) == history.states[first - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_damaged_newest_snapshot_recovers_the_full_state(
    history: History, tmp_path: Path, seed: int
) -> None:
    root, damage = _damaged(history, tmp_path, DamageKind.NEWEST_SNAPSHOT, seed)
    assert damage.expect is Expect.RECOVER and not damage.removed
    assert _recovered(root) == history.states[-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_all_snapshots_damaged_without_the_whole_wal_is_refused_in_every_mode(
    history: History, tmp_path: Path, seed: int
) -> None:
    root, damage = _damaged(history, tmp_path, DamageKind.ALL_SNAPSHOTS, seed)
    assert damage.expect is Expect.REFUSE and damage.refusal is not None
    for mode in RecoveryMode:
        with pytest.raises(CorruptionError) as refused:
            _recovered(root, mode)
        exc = refused.value
        assert damage.refusal.explained_by(f"corruption in {exc.path} at byte {exc.offset}")
    damage.restore()
    assert _recovered(root) == history.states[-1]


def test_damage_spares_records_from_before_the_cycle(history: History, tmp_path: Path) -> None:
    root = Path(history.copy(str(tmp_path / "copy")))
    newest = newest_segment_lsn(root)
    assert newest is not None
    for kind in (DamageKind.FRAME_BITFLIP, DamageKind.MISSING_SEGMENT, DamageKind.TAIL_TRUNCATE):
        assert inflict(kind, root, random.Random(0), since_lsn=len(history.writes) + 1) is None


def test_missing_segment_before_a_newest_segment_with_a_torn_header_is_refused(
    history: History, tmp_path: Path
) -> None:
    """Found by ``python -m harness crash``: SIGKILL between creating a segment and
    writing its header leaves an empty newest segment; a middle segment deleted before
    it must still be reported, not replayed around (the empty segment's name, the LSN
    it would start at, proves records are missing)."""
    root = Path(history.copy(str(tmp_path / "copy")))
    segments = sorted((root / "wal").glob("*.wal"))
    (root / "wal" / f"{len(history.writes) + 1:016x}.wal").write_bytes(b"")  # torn header
    gone = segments[-1]  # now a middle segment: the empty one is the newest
    gone.unlink()
    with pytest.raises(CorruptionError) as refused:
        _recovered(root)
    assert f"{len(history.writes) + 1:016x}.wal" in refused.value.path
    first_gone = int(gone.name[:16], 16)
    assert _recovered(root, RecoveryMode.POINT_IN_TIME) == history.states[first_gone - 1]
