"""Where the records sit in a working directory, for tools that damage it on purpose.

The crash harness damages a stopped server's files between kills and must know which
acknowledged records it destroyed. It learns that here, from the engine's own reader,
instead of parsing the format itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.format import (
    SEGMENT_HEADER_SIZE,
    SNAP_DIR,
    SNAP_SUFFIX,
    WAL_DIR,
    WAL_SUFFIX,
    parse_name,
)
from storage.wal.reader import Frame, SegmentReader

__all__ = ["SEGMENT_HEADER_SIZE", "Frame", "Segment", "segment_files", "segments",
           "snapshot_files"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One WAL segment and its valid frames, from the first up to any that is not."""

    lsn: int
    """The first LSN, from the file name."""
    path: Path
    frames: list[Frame]


def _listed(directory: Path, suffix: str) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = ((parse_name(p.name, suffix), p) for p in directory.iterdir())
    return sorted((lsn, p) for lsn, p in found if lsn is not None)


def segment_files(root: Path) -> list[tuple[int, Path]]:
    """(first LSN, path) of every WAL segment in the working directory ``root``, ascending."""
    return _listed(root / WAL_DIR, WAL_SUFFIX)


def snapshot_files(root: Path) -> list[tuple[int, Path]]:
    """(LSN, path) of every snapshot in the working directory ``root``, ascending."""
    return _listed(root / SNAP_DIR, SNAP_SUFFIX)


def segments(root: Path) -> list[Segment]:
    """Every WAL segment of ``root`` with its valid frames, oldest first."""
    return [Segment(lsn, path, list(SegmentReader(path.read_bytes()).frames()))
            for lsn, path in segment_files(root)]
