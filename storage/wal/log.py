"""The set of WAL segments: the one being appended to, rotation, and deletion of
segments that a snapshot has made redundant."""

from __future__ import annotations

import posixpath

from storage.format import WAL_DIR, segment_name
from storage.fs import FileSystem
from storage.wal.writer import PREALLOCATE_STEP, SegmentWriter


class Log:
    """Owns the WAL directory while the engine runs. Used by the committer thread only."""

    def __init__(self, fs: FileSystem, root: str, segments: list[int], next_lsn: int,
                 segment_bytes: int, fsync: bool) -> None:
        self._fs = fs
        self._root = root
        self._dir = posixpath.join(root, WAL_DIR)
        self._segment_bytes = segment_bytes
        self._step = max(4096, min(PREALLOCATE_STEP, segment_bytes))
        self._fsync = fsync
        self.segments = list(segments)
        """First LSNs of every segment on disk, ascending, the current one last."""
        self._writer = SegmentWriter.create(fs, root, next_lsn, self._step)
        self.segments.append(next_lsn)
        self.bytes_written = 0

    @property
    def current_path(self) -> str:
        """Path of the segment being appended to."""
        return self._writer.path

    def append(self, frame: bytes) -> None:
        """Write one frame and (unless fsync is off) make it durable.

        Raises NoSpaceError when the frame did not fit (the log is unchanged) and
        OSError for anything else, after which the log must not be used again.
        """
        writer = self._writer
        writer.append(frame, sync=self._fsync)
        writer.good_offset = writer.offset
        self.bytes_written += len(frame)

    def wants_rotation(self) -> bool:
        """Whether the current segment reached its size limit."""
        return self._writer.offset >= self._segment_bytes

    def rotate(self, next_lsn: int) -> None:
        """Finish the current segment and start a new one at ``next_lsn``."""
        if self._writer.first_lsn == next_lsn:
            return  # the current segment is still empty
        writer = SegmentWriter.create(self._fs, self._root, next_lsn, self._step)
        old, self._writer = self._writer, writer
        self.segments.append(next_lsn)
        old.finish()

    def delete_through(self, lsn: int) -> list[str]:
        """Delete every segment whose records all have LSN <= ``lsn``; returns their paths."""
        deleted = []
        while len(self.segments) > 1 and self.segments[1] <= lsn + 1:
            path = posixpath.join(self._dir, segment_name(self.segments.pop(0)))
            self._fs.unlink(path)
            deleted.append(path)
        if deleted:
            self._fs.sync_dir(self._dir)
        return deleted

    def close(self) -> None:
        """Trim and close the current segment (its frames are already durable)."""
        self._writer.finish()

    def abandon_after_failure(self) -> None:
        """Stop using the log after a write or fsync error.

        The failed group's frame may still sit in the page cache; cutting it back
        (best effort, never followed by another fsync) keeps a write that was answered
        503 from reappearing after a restart without power loss.
        """
        self._writer.cut_unsynced()
        self._writer.abandon()
