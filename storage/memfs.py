"""An in-memory filesystem that knows what a power cut would keep.

It implements the ``storage.fs.FileSystem`` seam and tracks, for every file, the
bytes that were fdatasync'd and, for every directory, the entries that were made
durable by a directory fsync. ``crash()`` returns the state a power cut would leave:
unsynced bytes dropped, creates/renames/unlinks not covered by a directory fsync
undone. Faults can be injected: fail the Nth fsync, or run out of space.
"""

from __future__ import annotations

import errno
import posixpath
from dataclasses import dataclass, field

from storage.errors import LockHeldError


@dataclass(eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""


class _MemLock:
    def __init__(self, fs: MemFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path

    def release(self) -> None:
        self._fs._locks.discard(self._path)


class _MemFile:
    def __init__(self, fs: MemFileSystem, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode
        self._closed = False

    def write_at(self, offset: int, data: bytes) -> None:
        buf = self._inode.data
        end = offset + len(data)
        grow = max(0, end - len(buf))
        room = self._fs._room()
        if grow > room:
            # Write what fits, like a real partial write, then report ENOSPC.
            fits = max(0, len(buf) + room - offset)
            self._put(offset, data[:fits])
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self._put(offset, data)

    def _put(self, offset: int, data: bytes) -> None:
        buf = self._inode.data
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset : offset + len(data)] = data

    def sync(self) -> None:
        self._fs._before_sync()
        self._inode.durable = bytes(self._inode.data)

    def allocate(self, length: int) -> None:
        grow = length - len(self._inode.data)
        if grow > 0:
            if grow > self._fs._room():
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            self._inode.data.extend(bytes(grow))

    def truncate(self, size: int) -> None:
        del self._inode.data[size:]

    def close(self) -> None:
        self._closed = True


class MemFileSystem:
    """In-memory ``FileSystem`` with durability tracking and fault injection."""

    def __init__(self) -> None:
        self._dirs: dict[str, dict[str, _Inode]] = {}
        self._durable_dirs: dict[str, dict[str, _Inode]] = {}
        self._locks: set[str] = set()
        self.space_limit: int | None = None
        """Total bytes all files may hold; beyond it writes fail with ENOSPC."""
        self.fail_sync_at: int | None = None
        """The Nth fsync/fdatasync from now (1 = the next) fails with EIO."""
        self.syncs = 0
        self.dir_syncs = 0

    # -- fault helpers ------------------------------------------------------------------
    def _room(self) -> int:
        if self.space_limit is None:
            return 1 << 62
        used = sum(len(i.data) for d in self._dirs.values() for i in d.values())
        return max(0, self.space_limit - used)

    def _before_sync(self) -> None:
        self.syncs += 1
        if self.fail_sync_at is not None:
            self.fail_sync_at -= 1
            if self.fail_sync_at == 0:
                self.fail_sync_at = None
                raise OSError(errno.EIO, "Input/output error (simulated fsync failure)")

    # -- path helpers -------------------------------------------------------------------
    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        path = posixpath.normpath(path)
        return posixpath.dirname(path) or ".", posixpath.basename(path)

    def _dir(self, path: str) -> dict[str, _Inode]:
        try:
            return self._dirs[posixpath.normpath(path)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such directory", path) from None

    def _inode(self, path: str) -> _Inode:
        d, name = self._split(path)
        try:
            return self._dir(d)[name]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such file", path) from None

    # -- FileSystem ---------------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        path = posixpath.normpath(path)
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i]) or "/"
            # Directories themselves are modelled as durable once created.
            self._dirs.setdefault(p, {})
            self._durable_dirs.setdefault(p, {})

    def listdir(self, path: str) -> list[str]:
        return list(self._dir(path))

    def exists(self, path: str) -> bool:
        path = posixpath.normpath(path)
        if path in self._dirs:
            return True
        d, name = self._split(path)
        return name in self._dirs.get(d, {})

    def read_bytes(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def size(self, path: str) -> int:
        return len(self._inode(path).data)

    def create(self, path: str) -> _MemFile:
        d, name = self._split(path)
        entries = self._dir(d)
        if name in entries:
            raise FileExistsError(errno.EEXIST, "File exists", path)
        inode = _Inode()
        entries[name] = inode
        return _MemFile(self, inode)

    def open_write(self, path: str) -> _MemFile:
        return _MemFile(self, self._inode(path))

    def write_file(self, path: str, data: bytes) -> None:
        d, name = self._split(path)
        if len(data) > self._room():
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self._dir(d)[name] = _Inode(bytearray(data))

    def rename(self, src: str, dst: str) -> None:
        sd, sn = self._split(src)
        dd, dn = self._split(dst)
        inode = self._inode(src)
        del self._dir(sd)[sn]
        self._dir(dd)[dn] = inode

    def unlink(self, path: str) -> None:
        d, name = self._split(path)
        self._inode(path)
        del self._dir(d)[name]

    def sync_dir(self, path: str) -> None:
        self._before_sync()
        self.dir_syncs += 1
        path = posixpath.normpath(path)
        self._durable_dirs[path] = dict(self._dir(path))

    def lock(self, path: str) -> _MemLock:
        path = posixpath.normpath(path)
        if path in self._locks:
            raise LockHeldError(path, "held in this process")
        self._locks.add(path)
        return _MemLock(self, path)

    # -- power loss ---------------------------------------------------------------------
    def crash(self) -> MemFileSystem:
        """The filesystem a power cut would leave now: only what was made durable."""
        after = MemFileSystem()
        copies: dict[int, _Inode] = {}
        for path, entries in self._durable_dirs.items():
            kept: dict[str, _Inode] = {}
            for name, inode in entries.items():
                copy = copies.setdefault(id(inode), _Inode(bytearray(inode.durable), inode.durable))
                kept[name] = copy
            after._dirs[path] = kept
            after._durable_dirs[path] = dict(kept)
        return after

    def files(self) -> dict[str, bytes]:
        """Every file's current content by path (for assertions)."""
        return {
            posixpath.join(d, name): bytes(inode.data)
            for d, entries in self._dirs.items()
            for name, inode in entries.items()
        }
