"""A working directory's files as the offline tool reads them: which snapshots and
segments there are, and one segment verified on its own.

The verdict on a segment is ``scan.SegmentScan``'s, the scanner recovery uses. The
difference is the starting point: recovery chains segments and stops at the first
damage, while here each segment continues from the LSN its name gives, so ``check`` and
``dump`` go on past damage and show every segment.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from storage.format import WAL_DIR, WAL_SUFFIX, segment_name
from storage.fs import FileSystem
from storage.wal.reader import Frame
from storage.wal.scan import SegmentOutcome, SegmentScan, list_lsns, nonzero_bytes


def existing_lsns(fs: FileSystem, directory: str, suffix: str) -> list[int]:
    """LSNs of the ``<16 hex><suffix>`` files in ``directory``; none if it does not exist."""
    # A directory holds snapshots or segments only once the server wrote one; the tool
    # must not create either directory, so a missing one simply holds nothing.
    return list_lsns(fs, directory, suffix) if fs.exists(directory) else []


@dataclass(frozen=True, slots=True)
class SegmentFile:
    """A WAL segment on disk: where it is and the LSN its name gives."""

    path: str
    first_lsn: int
    newest: bool
    """Whether it is the last segment (only the newest can end in a torn tail)."""


def segment_files(fs: FileSystem, root: str) -> list[SegmentFile]:
    """The WAL segments in ``root``, oldest first."""
    wal_dir = posixpath.join(root, WAL_DIR)
    lsns = existing_lsns(fs, wal_dir, WAL_SUFFIX)
    return [SegmentFile(posixpath.join(wal_dir, segment_name(first)), first, i == len(lsns) - 1)
            for i, first in enumerate(lsns)]


class SegmentReading:
    """One segment read whole and verified on its own by ``SegmentScan``.

    Iterate ``frames()`` to the end first; then ``outcome`` says how the valid frames
    end, and ``tail_bytes`` / ``tail_nonzero`` what follows them.
    """

    def __init__(self, fs: FileSystem, segment: SegmentFile) -> None:
        self.data = fs.read_bytes(segment.path)
        first = segment.first_lsn
        self._scan = SegmentScan(self.data, first, first, segment.newest)

    def frames(self) -> Iterator[Frame]:
        """Every valid frame that continues the LSN sequence from the segment's name."""
        return self._scan.frames()

    @property
    def next_lsn(self) -> int:
        """The LSN after the last valid frame."""
        return self._scan.expected

    @property
    def outcome(self) -> SegmentOutcome:
        """The scanner's verdict and the offset where the valid frames end."""
        outcome = self._scan.outcome
        assert outcome is not None, "frames() not read to the end"
        return outcome

    @property
    def tail_bytes(self) -> int:
        """Bytes from the end of the valid frames to the end of the file."""
        return len(self.data) - self.outcome.offset

    @property
    def tail_nonzero(self) -> int:
        """How many of those are not zero (zeros are preallocated space)."""
        return nonzero_bytes(self.data, self.outcome.offset)
