"""Reading WAL segments: frames in order, and where and why the readable part ends.

A segment is read whole (segments are bounded by the rotation size). Frames come out
of ``SegmentReader.frames()``; once it is exhausted, ``end`` says how the segment
ended. Whether a damaged frame is a torn tail or corruption is not decided here but
in ``storage.wal.scan``, for recovery and the offline tool alike: it depends on
whether the segment is the newest one, and on ``valid_frame_after``, which answers
the other half of the question: is there anything valid past the damage?
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from storage.errors import FrameDecodeError
from storage.format import (
    FRAME_HEADER_SIZE,
    FRAME_PAYLOAD_MARKER,
    FRAME_PAYLOAD_MARKER_V1,
    SEGMENT_HEADER_SIZE,
    Record,
    check_frame,
    decode_group,
)


class EndKind(Enum):
    """How the readable part of a segment ends."""

    CLEAN = "clean"
    """The last frame ends exactly at end of file."""
    ZERO_TAIL = "zero-tail"
    """Only zeros follow the last frame (preallocated space, or zero-filled blocks)."""
    DAMAGED = "damaged"
    """Bytes follow the last frame that are not a valid frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that verified: where it is and the commit group it holds, column-wise."""

    offset: int
    end: int
    first_lsn: int
    ops: bytes
    keys: list[bytes]
    values: list[bytes | None]
    deadlines: list[int | None] | None = None
    """Each record's deadline (ms since the epoch), or None if no record has one."""
    time_ms: int = 0
    """When the group committed (ms since the epoch; 0 in version 1 segments)."""

    @property
    def count(self) -> int:
        """Number of records in the frame."""
        return len(self.ops)

    @property
    def records(self) -> list[Record]:
        """The records row-wise, (op, key, value) in log order (built on each call)."""
        return list(zip(self.ops, self.keys, self.values, strict=True))


@dataclass(frozen=True, slots=True)
class SegmentEnd:
    """Where the valid frames of a segment stop, and what follows them."""

    offset: int
    kind: EndKind
    reason: str = ""


class SegmentReader:
    """Iterates the frames of one segment's bytes (header already checked)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.end: SegmentEnd | None = None
        """Set once ``frames()`` is exhausted."""

    def frames(self) -> Iterator[Frame]:
        """Every valid frame in order, stopping at the first that is not."""
        data = self._data
        view = memoryview(data)
        size = len(data)
        offset = SEGMENT_HEADER_SIZE
        while offset < size:
            try:
                length = check_frame(view, offset)
                start = offset + FRAME_HEADER_SIZE
                group = decode_group(view[start : start + length])
            except FrameDecodeError as exc:
                self.end = _classify_tail(data, offset, str(exc))
                return
            end = start + length
            yield Frame(offset, end, *group)
            offset = end
        self.end = SegmentEnd(offset, EndKind.CLEAN)


def _classify_tail(data: bytes, offset: int, reason: str) -> SegmentEnd:
    if data.count(0, offset) == len(data) - offset:
        return SegmentEnd(offset, EndKind.ZERO_TAIL, "zero fill")
    return SegmentEnd(offset, EndKind.DAMAGED, reason)


def valid_frame_after(data: bytes, offset: int) -> int | None:
    """Offset of the first verifying frame that starts after ``offset``, if any.

    Candidates are found by the payload's constant first byte, so scanning a large
    damaged region costs a ``bytes.find`` per candidate, not a checksum per byte.
    """
    view = memoryview(data)
    pos = offset + 1 + FRAME_HEADER_SIZE
    while True:
        pos = _next_marker(data, pos)
        if pos < 0:
            return None
        start = pos - FRAME_HEADER_SIZE
        try:
            length = check_frame(view, start)
            decode_group(view[pos : pos + length])
        except FrameDecodeError:
            pos += 1
            continue
        return start


_MARKERS = re.compile(re.escape(bytes([FRAME_PAYLOAD_MARKER])) + b"|"
                      + re.escape(bytes([FRAME_PAYLOAD_MARKER_V1])))


def _next_marker(data: bytes, pos: int) -> int:
    """Where the next byte that could begin a payload (either version) is, or -1."""
    match = _MARKERS.search(data, pos)
    return -1 if match is None else match.start()
