"""Helpers for the storage engine's unit tests.

The frame walker here reads segments with nothing but the documented framing
(``storage/FORMAT.md``), not with the engine's reader, so a test that damages "the
third frame" does not depend on the code under test to find it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from storage import Engine, EngineOptions, Op, Outcome
from storage.fs import FileSystem

SEGMENT_HEADER_SIZE = 24
FRAME_HEADER_SIZE = 8

Write = tuple[Op, bytes, bytes | None]


def frame_spans(data: bytes) -> list[tuple[int, int]]:
    """(offset, end) of every frame in a segment's bytes; stops at zeros or at the end."""
    spans = []
    pos = SEGMENT_HEADER_SIZE
    while pos + FRAME_HEADER_SIZE <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "little")
        end = pos + FRAME_HEADER_SIZE + length
        if length == 0 or end > len(data):
            break
        spans.append((pos, end))
        pos = end
    return spans


def apply(table: dict[bytes, bytes], write: Write) -> None:
    """The model of one record's effect on the table."""
    op, key, value = write
    if op is Op.PUT:
        assert value is not None
        table[key] = value
    elif op is Op.DELETE:
        table.pop(key, None)
    else:
        table.clear()


def states_of(writes: list[Write]) -> list[dict[bytes, bytes]]:
    """``states[i]`` is the table after the first ``i`` writes (LSNs 1..i)."""
    table: dict[bytes, bytes] = {}
    states = [dict(table)]
    for write in writes:
        apply(table, write)
        states.append(dict(table))
    return states


def wal_dir(root: str) -> str:
    return os.path.join(root, "wal")


def snap_dir(root: str) -> str:
    return os.path.join(root, "snap")


def segment_paths(root: str) -> list[str]:
    """Paths of the WAL segments in ``root`` (not side files), oldest first."""
    names = sorted(n for n in os.listdir(wal_dir(root)) if n.endswith(".wal"))
    return [os.path.join(wal_dir(root), n) for n in names]


def first_lsn(path: str) -> int:
    """The LSN a segment or snapshot is named by."""
    return int(os.path.basename(path)[:16], 16)


def tree_bytes(root: str) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its content."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_at(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip_bit(path: str, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


def truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def stopped_clock() -> int:
    """A wall clock that always reads 0 ms."""
    return 0


def options(**overrides: object) -> EngineOptions:
    """Options for tests: no automatic checkpoints, none on close (keeps the WAL whole),
    and a clock stopped at 0, so frames are the same bytes on every run."""
    base: dict[str, object] = {"checkpoint_bytes": 0, "checkpoint_on_close": False,
                               "clock": stopped_clock}
    base.update(overrides)
    return EngineOptions(**base)  # type: ignore[arg-type]


@contextlib.contextmanager
def opened(
    root: str, opts: EngineOptions | None = None, fs: FileSystem | None = None
) -> Iterator[Engine]:
    """An engine that is closed when the block ends, whatever happened in it."""
    engine = Engine.open(root, opts or options(), fs=fs)
    try:
        yield engine
    finally:
        engine.close()


def write_all(engine: Engine, writes: list[Write]) -> None:
    """Write each record as its own commit group (one frame per record)."""
    for op, key, value in writes:
        assert engine.write(op, key, value) is Outcome.OK


@dataclass(frozen=True)
class History:
    """A directory written by the engine, one record per frame, closed cleanly."""

    root: str
    writes: list[Write]
    states: list[dict[bytes, bytes]]
    segments: list[str]
    """Segment file names, oldest first."""
    spans: dict[str, list[tuple[int, int]]]
    """Frame spans per segment name."""

    def frame_lsn(self, name: str, index: int) -> int:
        """LSN of the record in frame ``index`` of segment ``name`` (one record per frame)."""
        return first_lsn(name) + index

    def copy(self, dest: str) -> str:
        """A copy of the directory at ``dest`` (to damage without touching the original)."""
        shutil.copytree(self.root, dest)
        return dest


def record_history(root: str, writes: list[Write], opts: EngineOptions) -> History:
    """Write ``writes`` one frame each into a fresh ``root``, close, and describe it."""
    with opened(root, opts) as engine:
        write_all(engine, writes)
    names = [os.path.basename(p) for p in segment_paths(root)]
    spans = {n: frame_spans(read(os.path.join(wal_dir(root), n))) for n in names}
    assert sum(len(s) for s in spans.values()) == len(writes)
    return History(root, writes, states_of(writes), names, spans)
