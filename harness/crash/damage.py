"""File damage between crash cycles, inflicted while the server is down.

Each kind of damage knows what it destroyed and what a correct server must do about
it (``Expect``):

* **Tail damage** (the newest WAL segment's last frame truncated, zero-filled,
  overwritten by garbage, or one bit flipped; or garbage after it): the server must
  start, cut the torn tail, and hold the acknowledged history minus exactly the
  records of that frame (``removed``; none when only bytes after it were hit).
* **Damage before the tail** (a bit flipped in an older frame, a middle segment
  deleted): strict recovery must refuse with one line naming the file and offset
  (``refusal``); ``--recovery=point-in-time`` must then start with the history up to
  the damaged frame, i.e. minus that frame and everything logged after it.
* **Snapshot damage**: with the newest snapshot damaged the server must recover the
  full state from the previous snapshot and a longer WAL (or from the WAL alone when
  it still reaches LSN 1); with every snapshot damaged, likewise from the WAL alone,
  else refuse in every mode. After a refusal the harness puts the bytes back.

Damage only ever hits records logged since ``since_lsn`` (the current cycle), whose
ops the cycle's oracle knows. Which frames and records sit where comes from the
engine's own reader (``storage.testing.ondisk``), so this module knows byte offsets
but not the format; another implementation's files are left alone
(``walkv_layout`` says whether a directory looks like walkv's).
"""

from __future__ import annotations

import enum
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storage import Record
from storage.testing.ondisk import (
    SEGMENT_HEADER_SIZE,
    Frame,
    Segment,
    segment_files,
    segments,
    snapshot_files,
)


class DamageKind(enum.Enum):
    """What the harness does to the files (see the module docstring)."""

    TAIL_TRUNCATE = "tail-truncate"
    TAIL_ZEROS = "tail-zeros"
    TAIL_GARBAGE = "tail-garbage"
    TAIL_BITFLIP = "tail-bitflip"
    FRAME_BITFLIP = "frame-bitflip"
    MISSING_SEGMENT = "missing-segment"
    NEWEST_SNAPSHOT = "newest-snapshot"
    ALL_SNAPSHOTS = "all-snapshots"


class Expect(enum.Enum):
    """What a correct server does on the next start."""

    RECOVER = "recover"
    """Start, holding the history minus the removed records (if any)."""
    REFUSE_THEN_PREFIX = "refuse, then recover a prefix in point-in-time mode"
    REFUSE = "refuse in every mode"


@dataclass(frozen=True)
class Refusal:
    """What the one error line of a refusing server must name."""

    names: tuple[str, ...]
    """File names of which the line must mention one."""
    offset: int | None
    """Byte offset the line must mention, when it is determined."""

    def explained_by(self, line: str) -> bool:
        """True if ``line`` names one of the files and (if known) the offset."""
        if not any(name in line for name in self.names):
            return False
        if self.offset is None:
            return True
        return str(self.offset) in line.replace(",", " ").replace(":", " ").split()


@dataclass
class Damage:
    """One act of damage: what was done, what it destroyed, what must happen next."""

    kind: DamageKind
    description: str
    expect: Expect
    removed: list[Record] = field(default_factory=list)
    """Records (in log order) that recovery may, and must, lose because of it."""
    removed_first_lsn: int | None = None
    """LSN of the first removed record."""
    refusal: Refusal | None = None
    originals: dict[Path, bytes] = field(default_factory=dict)
    """Each damaged file's bytes before the damage (for ``restore``)."""

    def restore(self) -> None:
        """Undo the damage: put every damaged file back as it was."""
        for path, data in self.originals.items():
            path.write_bytes(data)


def walkv_layout(workdir: Path) -> bool:
    """True if ``workdir`` holds walkv WAL segments (so damage knows the format)."""
    return bool(segment_files(workdir))


def newest_segment_lsn(workdir: Path) -> int | None:
    """First LSN of the newest WAL segment (right after a start: the next LSN)."""
    files = segment_files(workdir)
    return files[-1][0] if files else None


def _records_from(log: list[Segment], seg_index: int, frame_index: int) -> list[Record]:
    """Every record from frame ``frame_index`` of segment ``seg_index`` to the end."""
    records: list[Record] = []
    for i in range(seg_index, len(log)):
        frames = log[i].frames[frame_index if i == seg_index else 0 :]
        for frame in frames:
            records.extend(frame.records)
    return records


def _flip_bit(path: Path, offset: int, rng: random.Random) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << rng.randrange(8))]))


def _write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def inflict(kind: DamageKind, workdir: Path, rng: random.Random, since_lsn: int) -> Damage | None:
    """Damage ``workdir`` (server stopped) as ``kind`` says; None if it does not apply now.

    Only records with LSN >= ``since_lsn`` are ever destroyed.
    """
    if kind in _TEARS:
        return _tail(kind, workdir, rng, since_lsn)
    if kind is DamageKind.FRAME_BITFLIP:
        return _older_frame(workdir, rng, since_lsn)
    if kind is DamageKind.MISSING_SEGMENT:
        return _missing_segment(workdir, rng, since_lsn)
    return _snapshot_damage(kind, workdir, rng)


def _tail(kind: DamageKind, workdir: Path, rng: random.Random, since_lsn: int) -> Damage | None:
    log = segments(workdir)
    if not log or log[-1].lsn < since_lsn:
        return None
    newest = log[-1]
    if not newest.frames:
        return _garbage_after_header(kind, newest.path, rng)
    last = newest.frames[-1]
    what, frame_hit = _TEARS[kind](newest.path, last, rng)
    if not frame_hit:
        return Damage(kind, what, Expect.RECOVER)
    return Damage(kind, what, Expect.RECOVER, list(last.records), last.first_lsn)


def _garbage_after_header(kind: DamageKind, path: Path, rng: random.Random) -> Damage | None:
    """A segment with no frame yet: only garbage after its header damages anything."""
    if kind is not DamageKind.TAIL_GARBAGE:
        return None
    garbage = _garbage(rng)
    _write_at(path, SEGMENT_HEADER_SIZE, garbage)
    return Damage(kind, f"{len(garbage)} garbage bytes after the header of {path.name}",
                  Expect.RECOVER)


# Each tears the last frame of a segment and says what it did, and whether the frame
# was hit (garbage written right after its end leaves it whole).
_Tear = Callable[[Path, Frame, random.Random], tuple[str, bool]]


def _truncate(path: Path, frame: Frame, rng: random.Random) -> tuple[str, bool]:
    cut = rng.randrange(frame.offset + 1, frame.end)
    os.truncate(path, cut)
    return f"truncated {path.name} at {cut}, inside its last frame {_span(frame)}", True


def _zero_fill(path: Path, frame: Frame, rng: random.Random) -> tuple[str, bool]:
    cut = rng.randrange(frame.offset + 1, frame.end)
    zeros = frame.end - cut + rng.randrange(1, 8192)
    _write_at(path, cut, bytes(zeros))
    return f"zero-filled {path.name} from {cut}, inside its last frame {_span(frame)}", True


def _bit_flip(path: Path, frame: Frame, rng: random.Random) -> tuple[str, bool]:
    where = rng.randrange(frame.offset, frame.end)
    _flip_bit(path, where, rng)
    return f"flipped a bit at {where} of {path.name}, in its last frame {_span(frame)}", True


def _overwrite(path: Path, frame: Frame, rng: random.Random) -> tuple[str, bool]:
    where = rng.randrange(frame.offset + 1, frame.end + 1)
    garbage = _garbage(rng)
    _write_at(path, where, garbage)
    what = f"{len(garbage)} garbage bytes at {where} of {path.name} (last frame {_span(frame)})"
    return what, where != frame.end


_TEARS: dict[DamageKind, _Tear] = {
    DamageKind.TAIL_TRUNCATE: _truncate,
    DamageKind.TAIL_ZEROS: _zero_fill,
    DamageKind.TAIL_BITFLIP: _bit_flip,
    DamageKind.TAIL_GARBAGE: _overwrite,
}


def _span(frame: Frame) -> str:
    return f"[{frame.offset}, {frame.end})"


def _garbage(rng: random.Random) -> bytes:
    n = rng.randrange(1, 4096)
    return bytes([rng.randrange(1, 256)]) + rng.randbytes(n - 1)


def _snapshot_lsn(workdir: Path) -> int:
    snaps = snapshot_files(workdir)
    return snaps[-1][0] if snaps else 0


def _older_frame(workdir: Path, rng: random.Random, since_lsn: int) -> Damage | None:
    log = segments(workdir)
    floor = max(since_lsn, _snapshot_lsn(workdir) + 1)
    candidates = [
        (s, f)
        for s, segment in enumerate(log)
        for f, frame in enumerate(segment.frames)
        if frame.first_lsn >= floor
    ][:-1]  # never the last frame of the log: that would be tail damage
    if not candidates:
        return None
    s, f = rng.choice(candidates)
    segment, frame = log[s], log[s].frames[f]
    where = rng.randrange(frame.offset, frame.end)
    original = segment.path.read_bytes()
    _flip_bit(segment.path, where, rng)
    return Damage(
        DamageKind.FRAME_BITFLIP,
        f"flipped a bit at {where} of {segment.path.name}, in the frame at {frame.offset} "
        f"(LSN {frame.first_lsn}), with valid frames after it",
        Expect.REFUSE_THEN_PREFIX,
        _records_from(log, s, f),
        frame.first_lsn,
        Refusal((segment.path.name,), frame.offset),
        {segment.path: original},
    )


def _missing_segment(workdir: Path, rng: random.Random, since_lsn: int) -> Damage | None:
    log = segments(workdir)
    floor = max(since_lsn, _snapshot_lsn(workdir) + 1)
    candidates = [i for i in range(1, len(log) - 1)
                  if log[i].lsn >= floor and log[i].frames]
    if not candidates:
        return None
    i = rng.choice(candidates)
    gone = log[i]
    original = gone.path.read_bytes()
    gone.path.unlink()
    return Damage(
        DamageKind.MISSING_SEGMENT,
        f"deleted {gone.path.name} (LSN {gone.lsn}), {len(log) - i - 1} segments after it",
        Expect.REFUSE_THEN_PREFIX,
        _records_from(log, i, 0),
        gone.lsn,
        Refusal((gone.path.name, log[i + 1].path.name), None),
        {gone.path: original},
    )


def _snapshot_damage(kind: DamageKind, workdir: Path, rng: random.Random) -> Damage | None:
    snaps = snapshot_files(workdir)
    if not snaps:
        return None
    hit = snaps[-1:] if kind is DamageKind.NEWEST_SNAPSHOT else snaps
    originals = {path: path.read_bytes() for _, path in hit}
    for path, data in originals.items():
        _flip_bit(path, rng.randrange(len(data)), rng)
    wal = segment_files(workdir)
    wal_from_start = bool(wal) and wal[0][0] == 1
    survivor = len(snaps) > len(hit)
    names = ", ".join(path.name for path in originals)
    if survivor or wal_from_start:
        source = "the previous snapshot" if survivor else "the WAL from LSN 1"
        return Damage(kind, f"flipped a bit in {names}; the state is still in {source}",
                      Expect.RECOVER, originals=originals)
    refusal = Refusal(tuple(path.name for path in originals) + tuple(p.name for _, p in wal[:1]),
                      None)
    return Damage(kind, f"flipped a bit in {names}; no snapshot left and the WAL starts at "
                  f"LSN {wal[0][0] if wal else '-'}", Expect.REFUSE, refusal=refusal,
                  originals=originals)
