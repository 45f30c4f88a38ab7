"""Appending frames to one WAL segment (``storage.wal.log`` rotates and deletes segments).

Whether a frame is synced is the caller's decision (``append(frame, sync=True)`` or
``sync``), the way LevelDB's log writer leaves it to its caller. Segments are
preallocated in steps so that syncing an append does not also have to persist a new
file size, which makes each sync markedly cheaper (the README has the numbers). A
preallocated segment therefore ends in zeros; recovery treats zeros after the last
frame as unused space and trims them.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath

from storage.errors import NoSpaceError
from storage.format import SEGMENT_HEADER_SIZE, WAL_DIR, encode_segment_header, segment_name
from storage.fs import FileHandle, FileSystem

PREALLOCATE_STEP = 4 << 20
"""Bytes reserved at a time ahead of the write position."""


class SegmentWriter:
    """Appends frames to one open segment at a tracked offset."""

    def __init__(self, fs: FileSystem, path: str, first_lsn: int, handle: FileHandle,
                 offset: int, step: int) -> None:
        self.fs = fs
        self.path = path
        self.first_lsn = first_lsn
        self._handle = handle
        self.offset = offset
        """End of the last frame written; the next frame goes here."""
        self.good_offset = offset
        """End of the last frame the caller saw written and synced."""
        self._allocated = offset
        self._step = step

    @classmethod
    def create(cls, fs: FileSystem, root: str, first_lsn: int, step: int) -> SegmentWriter:
        """Create a segment durably: header written and synced, directory entry synced."""
        wal_dir = posixpath.join(root, WAL_DIR)
        path = posixpath.join(wal_dir, segment_name(first_lsn))
        handle = fs.create(path)
        try:
            handle.write_at(0, encode_segment_header(first_lsn))
            handle.sync()
            fs.sync_dir(wal_dir)
        except OSError:
            handle.close()
            _discard(fs, path)
            raise
        return cls(fs, path, first_lsn, handle, SEGMENT_HEADER_SIZE, step)

    def append(self, frame: bytes, *, sync: bool = False) -> None:
        """Write ``frame`` after the last one; with ``sync``, durably (one DSYNC write).

        Raises NoSpaceError (rolled back) or OSError (after which the log must not be
        used again: with ``sync`` the frame may or may not be durable).
        """
        end = self.offset + len(frame)
        if end > self._allocated:
            try:
                self._handle.allocate(max(end, self._allocated + self._step))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # Nothing was written. Without a reservation we can still try a plain
                # write: the device may have room for this frame, just not the step.
            else:
                self._allocated = max(end, self._allocated + self._step)
        try:
            if sync:
                self._handle.write_durable(self.offset, frame)
            else:
                self._handle.write_at(self.offset, frame)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # Part of the frame may have been written: cut back to the last good
            # frame. The cut bytes belong to a group nobody was told is stored.
            self._handle.truncate(self.offset)
            self._allocated = self.offset
            raise NoSpaceError(errno.ENOSPC, f"no space left writing {self.path}") from exc
        self.offset = end

    def sync(self) -> None:
        """fdatasync the segment. An error here is fatal for the log (never retried)."""
        self._handle.sync()

    def finish(self) -> None:
        """Close a segment that takes no more frames: trim the preallocated tail."""
        try:
            if self._allocated > self.offset:
                self._handle.truncate(self.offset)
                self._handle.sync()
        finally:
            self._handle.close()

    def cut_unsynced(self) -> None:
        """Best effort: truncate to the end of the last frame that was synced."""
        with contextlib.suppress(OSError):
            self._handle.truncate(self.good_offset)

    def abandon(self) -> None:
        """Close without touching the file (after a failure)."""
        self._handle.close()


def _discard(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):
        fs.unlink(path)
