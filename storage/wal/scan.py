"""Verifying one WAL segment without changing it: header, frames, LSN continuity, and
a verdict on how its readable part ends.

Recovery and the offline tools (``python -m storage check|dump|stats``) both read
segments through ``SegmentScan``, so "torn tail or corruption" is decided by one piece
of code: what ``check`` reports is what the next start will do.

The verdicts, in the order they are decided:

* ``TORN_HEADER``: the newest segment's header never became durable and nothing valid
  follows it (the segment was being created when the process died); it holds nothing.
  Only once its name continues the LSN sequence: a gap before it is ``DAMAGED``.
* ``DAMAGED``: the header is damaged or does not match the file name, the segment does
  not start at the expected LSN, a frame's LSN breaks the sequence, or bytes that are
  not a frame are followed by a valid frame or sit in an older segment. Corruption.
* ``TORN_TAIL``: in the newest segment, bytes after the last valid frame that are not
  a frame, with nothing valid after them: a group whose write was cut short.
* ``ZERO_TAIL``: only zeros after the last frame (preallocated space).
* ``CLEAN``: the last frame ends at end of file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from storage.format import decode_segment_header, parse_name
from storage.fs import FileSystem
from storage.wal.reader import EndKind, Frame, SegmentReader, valid_frame_after


class Verdict(Enum):
    """How a segment's readable part ends (see the module docstring)."""

    CLEAN = "clean"
    ZERO_TAIL = "zero-tail"
    TORN_TAIL = "torn-tail"
    TORN_HEADER = "torn-header"
    DAMAGED = "damaged"


@dataclass(frozen=True, slots=True)
class SegmentOutcome:
    """The verdict on a segment and the byte offset it applies to.

    ``offset`` is where the valid frames end: the first byte of the damage, of the torn
    tail or of the zeros, or the end of file when the segment is clean.
    """

    verdict: Verdict
    offset: int
    reason: str = ""


class SegmentScan:
    """Iterates the frames of one segment that continue the LSN sequence.

    ``first`` is the LSN the file name gives, ``expected`` the LSN the segment must
    start at, ``newest`` whether it is the last segment (only the newest can have a
    torn tail). Once ``frames()`` is exhausted, ``outcome`` holds the verdict,
    ``expected`` the LSN after the last valid frame and ``header_ok`` whether the
    header verified and started at the expected LSN.
    """

    def __init__(self, data: bytes, first: int, expected: int, newest: bool) -> None:
        self.data = data
        self.first = first
        self.expected = expected
        self.newest = newest
        self.header_ok = False
        self.outcome: SegmentOutcome | None = None

    def frames(self) -> Iterator[Frame]:
        """Every valid, in-sequence frame; sets ``outcome`` when done."""
        data = self.data
        # The name alone says where a segment starts: a gap before it is damage even
        # when its header is torn (else a missing segment before a torn newest one
        # would be replayed around).
        if self.first != self.expected:
            self.outcome = SegmentOutcome(
                Verdict.DAMAGED, 0, f"segment starts at LSN {self.first}, expected {self.expected}")
            return
        header_lsn = decode_segment_header(data)
        if header_lsn != self.first:
            if self.newest and header_lsn is None and valid_frame_after(data, 0) is None:
                self.outcome = SegmentOutcome(Verdict.TORN_HEADER, 0, "torn segment header")
            else:
                self.outcome = SegmentOutcome(
                    Verdict.DAMAGED, 0, "segment header damaged or not matching its file name")
            return
        self.header_ok = True
        reader = SegmentReader(data)
        for frame in reader.frames():
            if frame.first_lsn != self.expected:
                self.outcome = SegmentOutcome(
                    Verdict.DAMAGED, frame.offset,
                    f"frame has LSN {frame.first_lsn}, expected {self.expected}")
                return
            yield frame
            self.expected += frame.count
        self.outcome = self._classify_end(reader)

    def _classify_end(self, reader: SegmentReader) -> SegmentOutcome:
        end = reader.end
        assert end is not None
        if end.kind is EndKind.DAMAGED:
            if self.newest and valid_frame_after(self.data, end.offset) is None:
                return SegmentOutcome(Verdict.TORN_TAIL, end.offset, f"torn tail: {end.reason}")
            return SegmentOutcome(Verdict.DAMAGED, end.offset, end.reason)
        if end.kind is EndKind.ZERO_TAIL:
            return SegmentOutcome(Verdict.ZERO_TAIL, end.offset, "zero fill")
        return SegmentOutcome(Verdict.CLEAN, end.offset)

    def run(self) -> SegmentOutcome:
        """Scan to the end without looking at the frames; returns the outcome."""
        for _frame in self.frames():
            pass
        assert self.outcome is not None
        return self.outcome


def nonzero_bytes(data: bytes, offset: int) -> int:
    """How many bytes from ``offset`` to the end are not zero."""
    return len(data) - offset - data.count(0, offset)


def list_lsns(fs: FileSystem, directory: str, suffix: str) -> list[int]:
    """LSNs of the files in ``directory`` named ``<16 hex><suffix>``, ascending."""
    lsns = (parse_name(name, suffix) for name in fs.listdir(directory))
    return sorted(lsn for lsn in lsns if lsn is not None)
