"""The filesystem seam: every byte walkv reads or writes goes through here.

``OsFileSystem`` is the real thing (Linux, ext4 semantics). Tests and the power-loss
explorer swap in ``storage.testing.memfs.MemFileSystem``, which can forget unsynced data,
fail the Nth fsync or run out of space. The engine never calls ``os`` directly for
file I/O, so whatever the seam can simulate, the engine is tested against.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from typing import ClassVar, Protocol

from storage.errors import LockHeldError
from storage.format import TMP_SUFFIX


class FileHandle(Protocol):
    """An open file written at explicit offsets (WAL segments, snapshots)."""

    def write_at(self, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset`` or raise OSError (nothing is synced)."""

    def sync(self) -> None:
        """fdatasync: make written data durable. Raises OSError on failure."""

    def write_durable(self, offset: int, data: bytes) -> None:
        """``write_at`` then ``sync``, as one system call where the OS has one.

        On Linux this is ``pwritev2(RWF_DSYNC)``: the write returns once its data, and
        the metadata needed to read it back, are on stable storage, as after
        fdatasync. One call instead of two matters to a Python thread: every system
        call releases the GIL, and taking it back from a busy event loop costs tens of
        microseconds.
        """

    def allocate(self, length: int) -> None:
        """Reserve ``length`` bytes (the file reads as zeros up to there)."""

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes."""

    def close(self) -> None:
        """Release the handle (does not sync)."""


class DirLock(Protocol):
    """An exclusive lock on a working directory, held until released."""

    def release(self) -> None:
        """Give the lock up."""


class FileSystem(Protocol):
    """The operations the storage engine performs on its working directory."""

    def makedirs(self, path: str) -> None:
        """Create ``path`` and parents if missing."""

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (unsorted)."""

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a file."""

    def size(self, path: str) -> int:
        """A file's size in bytes."""

    def create(self, path: str) -> FileHandle:
        """Create a new, empty file (fails if it exists) and open it for writing."""

    def open_write(self, path: str) -> FileHandle:
        """Open an existing file for writing at offsets, without truncating it."""

    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` with ``data`` (not synced; for side files)."""

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename within a directory (not durable until sync_dir)."""

    def unlink(self, path: str) -> None:
        """Remove a file (not durable until sync_dir)."""

    def sync_dir(self, path: str) -> None:
        """fsync a directory, making creates/renames/unlinks in it durable."""

    def lock(self, path: str) -> DirLock:
        """Take an exclusive lock on ``path`` or raise LockHeldError."""


_RWF_DSYNC: int = getattr(os, "RWF_DSYNC", 0)


class _OsFile:
    __slots__ = ("_fd",)
    dsync_writes: ClassVar[bool] = _RWF_DSYNC != 0
    """Whether ``pwritev2(RWF_DSYNC)`` is used (Linux 4.7+); off after ENOSYS/EOPNOTSUPP."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            if n == 0:  # pragma: no cover - pwrite never returns 0 for a non-empty buffer
                raise OSError(errno.EIO, "pwrite wrote nothing")
            view = view[n:]
            offset += n

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def write_durable(self, offset: int, data: bytes) -> None:
        if not (_OsFile.dsync_writes and self._write_dsync(offset, data)):
            self.write_at(offset, data)
            self.sync()

    def _write_dsync(self, offset: int, data: bytes) -> bool:
        """All of ``data`` by ``pwritev2(RWF_DSYNC)``; False if the kernel cannot do it."""
        view = memoryview(data)
        while view:
            try:
                n = os.pwritev(self._fd, [view], offset, _RWF_DSYNC)
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP) and len(view) == len(data):
                    # No pwritev2 flags here (old kernel, or this filesystem): nothing was
                    # written, so the two-call form is exact, from now on.
                    _OsFile.dsync_writes = False
                    return False
                raise
            if n == 0:  # pragma: no cover - pwritev never returns 0 for a non-empty buffer
                raise OSError(errno.EIO, "pwritev wrote nothing")
            view = view[n:]
            offset += n
        return True

    def allocate(self, length: int) -> None:
        os.posix_fallocate(self._fd, 0, length)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        os.close(self._fd)


class _FlockLock:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class OsFileSystem:
    """The real filesystem. Durability follows Linux/ext4: data needs fdatasync on the
    file, and a new name needs fsync on its directory."""

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def read_bytes(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def create(self, path: str) -> FileHandle:
        return _OsFile(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))

    def open_write(self, path: str) -> FileHandle:
        return _OsFile(os.open(path, os.O_WRONLY | os.O_CLOEXEC))

    def write_file(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> DirLock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(path, holder) from None
        # Record who holds it, for the message a second server prints.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        return _FlockLock(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"


def write_atomically(fs: FileSystem, path: str, chunks: list[bytes]) -> None:
    """Durably replace ``path``: write a temp file, fsync it, rename, fsync the directory.

    After this returns, a crash leaves either the old file or the new one, never a
    mix; a crash before it returns may leave ``path + ".tmp"``, which recovery removes.
    """
    tmp = path + TMP_SUFFIX
    if fs.exists(tmp):
        fs.unlink(tmp)
    handle = fs.create(tmp)
    try:
        try:
            offset = 0
            for chunk in chunks:
                handle.write_at(offset, chunk)
                offset += len(chunk)
            handle.sync()
        finally:
            handle.close()
    except OSError:
        # The partial file is useless and, when the disk is full, holds the space
        # the WAL needs to accept writes again: remove it now, not at next start.
        with contextlib.suppress(OSError):
            fs.unlink(tmp)
        raise
    fs.rename(tmp, path)
    fs.sync_dir(os.path.dirname(path) or ".")
