"""An in-memory filesystem that knows what a power cut would keep.

It implements the ``storage.fs.FileSystem`` seam and tracks, for every file, the
bytes that were fdatasync'd and, for every directory, the entries that were made
durable by a directory fsync. ``crash()`` returns the state a power cut would leave:
unsynced bytes dropped, creates/renames/unlinks not covered by a directory fsync
undone. Faults can be injected: fail the Nth fsync, or run out of space.

For the power-loss explorer (``harness/powerloss.py``, the ALICE / RocksDB
FaultInjectionTestFS idea) it can also record every mutating call as an ``FsOp``
in ``journal``. ``replay`` rebuilds the filesystem as it was after any prefix of a
journal, ``pending()`` lists the operations a power cut at that point could still
lose, and ``crash(PowerCut(...))`` builds one of the states the cut could leave:
some unsynced operations kept whole, the last write torn (a prefix of it, or
garbage in its place), everything else lost.
"""

from __future__ import annotations

import errno
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from storage.errors import LockHeldError


class FsOpKind(Enum):
    """What a recorded filesystem call did."""

    MAKEDIRS = "makedirs"
    CREATE = "create"
    WRITE = "write"
    ALLOCATE = "allocate"
    TRUNCATE = "truncate"
    SYNC = "sync"
    WRITE_FILE = "write_file"
    RENAME = "rename"
    UNLINK = "unlink"
    SYNC_DIR = "sync_dir"


_DATA_KINDS = frozenset({FsOpKind.WRITE, FsOpKind.ALLOCATE, FsOpKind.TRUNCATE})
_ENTRY_KINDS = frozenset({FsOpKind.CREATE, FsOpKind.WRITE_FILE, FsOpKind.RENAME, FsOpKind.UNLINK})


@dataclass(frozen=True, slots=True)
class FsOp:
    """One mutating filesystem call that succeeded (a failed one is not recorded).

    ``seq`` numbers the calls of one filesystem from 0; a replayed filesystem keeps
    the numbers, so a ``PowerCut`` built from it names the same operations.
    """

    seq: int
    kind: FsOpKind
    path: str
    """The file (the directory for MAKEDIRS and SYNC_DIR; the source for RENAME)."""
    ino: int = 0
    """Inode number of the file the call acted on (0 for directory calls)."""
    offset: int = 0
    """WRITE: where; ALLOCATE, TRUNCATE: the new size."""
    data: bytes = b""
    """WRITE: the bytes written; WRITE_FILE: the file's content."""
    dst: str = ""
    """RENAME: the new name."""

    @property
    def is_sync(self) -> bool:
        """True for fdatasync of a file and fsync of a directory."""
        return self.kind in (FsOpKind.SYNC, FsOpKind.SYNC_DIR)

    @property
    def is_data(self) -> bool:
        """True for calls that change a file's bytes (lost unless the file is synced)."""
        return self.kind in _DATA_KINDS

    def describe(self) -> str:
        """One line for a reproduction report."""
        if self.kind is FsOpKind.WRITE:
            return f"#{self.seq} write {len(self.data)} bytes at {self.offset} of {self.path}"
        if self.kind in (FsOpKind.ALLOCATE, FsOpKind.TRUNCATE):
            return f"#{self.seq} {self.kind.value} {self.path} to {self.offset} bytes"
        if self.kind is FsOpKind.RENAME:
            return f"#{self.seq} rename {self.path} -> {self.dst}"
        return f"#{self.seq} {self.kind.value} {self.path}"


@dataclass(frozen=True, slots=True)
class PowerCut:
    """Which unsynced operations (by ``FsOp.seq``) a power cut lets reach the disk.

    Everything that was synced survives; of the rest, only the operations in
    ``keep`` do (whole), and each WRITE in ``torn`` leaves the given bytes at its
    offset instead of its data (a prefix of it, or garbage). The default keeps
    nothing: the plainest power cut.
    """

    keep: frozenset[int] = frozenset()
    torn: Mapping[int, bytes] = field(default_factory=dict)


@dataclass(eq=False)
class _Inode:
    ino: int
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""


@dataclass(frozen=True, slots=True)
class _Entry:
    """One directory entry change of a pending CREATE/WRITE_FILE/RENAME/UNLINK."""

    seq: int
    directory: str
    name: str
    ino: int | None
    """The inode the name now points to; None when the name was removed."""


class _MemLock:
    def __init__(self, fs: MemFileSystem, path: str) -> None:
        self._fs = fs
        self._path = path

    def release(self) -> None:
        self._fs._locks.discard(self._path)


class _MemFile:
    def __init__(self, fs: MemFileSystem, inode: _Inode, path: str) -> None:
        self._fs = fs
        self._inode = inode
        self._path = path
        self._closed = False

    def write_at(self, offset: int, data: bytes) -> None:
        buf = self._inode.data
        end = offset + len(data)
        grow = max(0, end - len(buf))
        room = self._fs._room()
        if grow > room:
            # Write what fits, like a real partial write, then report ENOSPC.
            fits = max(0, len(buf) + room - offset)
            if fits:
                self._do(FsOpKind.WRITE, offset, bytes(data[:fits]))
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        self._do(FsOpKind.WRITE, offset, bytes(data))

    def sync(self) -> None:
        self._fs._before_sync()
        self._do(FsOpKind.SYNC)

    def write_durable(self, offset: int, data: bytes) -> None:
        # A power cut during a DSYNC write leaves what a cut between the write and an
        # fdatasync leaves: any prefix of the write, or all of it.
        self.write_at(offset, data)
        self.sync()

    def allocate(self, length: int) -> None:
        grow = length - len(self._inode.data)
        if grow > 0:
            if grow > self._fs._room():
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            self._do(FsOpKind.ALLOCATE, length)

    def truncate(self, size: int) -> None:
        self._do(FsOpKind.TRUNCATE, size)

    def close(self) -> None:
        self._closed = True

    def _do(self, kind: FsOpKind, offset: int = 0, data: bytes = b"") -> None:
        self._fs._record(kind, self._path, ino=self._inode.ino, offset=offset, data=data)


class MemFileSystem:
    """In-memory ``FileSystem`` with durability tracking and fault injection.

    ``record=True`` keeps every successful mutating call in ``journal`` (with the
    bytes written), for ``replay``.
    """

    def __init__(self, record: bool = False) -> None:
        self._dirs: dict[str, dict[str, _Inode]] = {}
        self._durable_dirs: dict[str, dict[str, _Inode]] = {}
        self._inodes: dict[int, _Inode] = {}
        self._next_ino = 1
        self._next_seq = 0
        # Unsynced effects, oldest first: file data changes not yet covered by a sync
        # of their file, directory entry changes not yet covered by a directory fsync.
        self._pending_data: list[FsOp] = []
        self._pending_entries: list[_Entry] = []
        self._ops: dict[int, FsOp] = {}
        """Pending operations by seq (the ones ``pending()`` returns)."""
        self._mutex = threading.RLock()
        self._locks: set[str] = set()
        self.journal: list[FsOp] | None = [] if record else None
        """Every successful mutating call, in order (only with ``record=True``)."""
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
    def _dir(self, path: str) -> dict[str, _Inode]:
        try:
            return self._dirs[posixpath.normpath(path)]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such directory", path) from None

    def _inode(self, path: str) -> _Inode:
        d, name = _split_path(path)
        try:
            return self._dir(d)[name]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "No such file", path) from None

    # -- FileSystem ---------------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        self._record(FsOpKind.MAKEDIRS, posixpath.normpath(path))

    def listdir(self, path: str) -> list[str]:
        return list(self._dir(path))

    def exists(self, path: str) -> bool:
        path = posixpath.normpath(path)
        if path in self._dirs:
            return True
        d, name = _split_path(path)
        return name in self._dirs.get(d, {})

    def read_bytes(self, path: str) -> bytes:
        return bytes(self._inode(path).data)

    def size(self, path: str) -> int:
        return len(self._inode(path).data)

    def create(self, path: str) -> _MemFile:
        d, name = _split_path(path)
        with self._mutex:
            if name in self._dir(d):
                raise FileExistsError(errno.EEXIST, "File exists", path)
            op = self._record(FsOpKind.CREATE, path, ino=self._next_ino)
            return _MemFile(self, self._inodes[op.ino], path)

    def open_write(self, path: str) -> _MemFile:
        return _MemFile(self, self._inode(path), path)

    def write_file(self, path: str, data: bytes) -> None:
        self._dir(_split_path(path)[0])
        if len(data) > self._room():
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        with self._mutex:
            self._record(FsOpKind.WRITE_FILE, path, ino=self._next_ino, data=bytes(data))

    def rename(self, src: str, dst: str) -> None:
        ino = self._inode(src).ino
        self._dir(_split_path(dst)[0])
        self._record(FsOpKind.RENAME, src, ino=ino, dst=dst)

    def unlink(self, path: str) -> None:
        ino = self._inode(path).ino
        self._record(FsOpKind.UNLINK, path, ino=ino)

    def sync_dir(self, path: str) -> None:
        self._before_sync()
        self.dir_syncs += 1
        path = posixpath.normpath(path)
        self._dir(path)
        self._record(FsOpKind.SYNC_DIR, path)

    def lock(self, path: str) -> _MemLock:
        path = posixpath.normpath(path)
        if path in self._locks:
            raise LockHeldError(path, "held in this process")
        self._locks.add(path)
        return _MemLock(self, path)

    # -- recording and applying operations ----------------------------------------------
    def _record(self, kind: FsOpKind, path: str, *, ino: int = 0, offset: int = 0,
                data: bytes = b"", dst: str = "") -> FsOp:
        with self._mutex:
            op = FsOp(self._next_seq, kind, path, ino, offset, data, dst)
            self.apply(op)
            return op

    def apply(self, op: FsOp) -> None:
        """Perform a recorded operation again (``replay``); no faults are injected."""
        with self._mutex:
            self._next_seq = op.seq + 1
            if self.journal is not None:
                self.journal.append(op)
            kind = op.kind
            if kind in _DATA_KINDS:
                _apply_data(self._inodes[op.ino].data, op, op.data)
                self._pending_data.append(op)
                self._ops[op.seq] = op
            elif kind is FsOpKind.SYNC:
                inode = self._inodes[op.ino]
                inode.durable = bytes(inode.data)
                self._pending_data = [p for p in self._pending_data if p.ino != op.ino]
                self._forget_settled()
            elif kind is FsOpKind.SYNC_DIR:
                self._durable_dirs[op.path] = dict(self._dirs[op.path])
                self._pending_entries = [e for e in self._pending_entries
                                         if e.directory != op.path]
                self._forget_settled()
            elif kind is FsOpKind.MAKEDIRS:
                self._makedirs(op.path)
            else:
                self._apply_entries(op)

    def _makedirs(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i]) or "/"
            # Directories themselves are modelled as durable once created.
            self._dirs.setdefault(p, {})
            self._durable_dirs.setdefault(p, {})

    def _apply_entries(self, op: FsOp) -> None:
        if op.kind in (FsOpKind.CREATE, FsOpKind.WRITE_FILE):
            inode = _Inode(op.ino, bytearray(op.data))
            self._inodes[op.ino] = inode
            self._next_ino = max(self._next_ino, op.ino + 1)
            if op.data:  # WRITE_FILE's content is as unsynced as any write
                self._pending_data.append(op)
        for entry in _entries(op):
            entries = self._dirs[entry.directory]
            if entry.ino is None:
                del entries[entry.name]
            else:
                entries[entry.name] = self._inodes[entry.ino]
            self._pending_entries.append(entry)
        self._ops[op.seq] = op

    def _forget_settled(self) -> None:
        live = {p.seq for p in self._pending_data} | {e.seq for e in self._pending_entries}
        for seq in [s for s in self._ops if s not in live]:
            del self._ops[seq]

    @classmethod
    def replay(cls, ops: Iterable[FsOp], record: bool = False) -> MemFileSystem:
        """A filesystem in the state ``ops`` (a journal, or a prefix of one) left."""
        fs = cls(record=record)
        for op in ops:
            fs.apply(op)
        return fs

    # -- power loss ---------------------------------------------------------------------
    def pending(self) -> list[FsOp]:
        """The operations a power cut now could still lose, oldest first."""
        with self._mutex:
            return [self._ops[seq] for seq in sorted(self._ops)]

    def crash(self, cut: PowerCut | None = None) -> MemFileSystem:
        """The filesystem a power cut would leave now.

        Without ``cut``: only what was made durable. With it: that, plus the unsynced
        operations it keeps or tears (applied in their original order). Every file of
        the result is durable, so it can be crashed or recovered again.
        """
        with self._mutex:
            after = MemFileSystem()
            copies: dict[int, _Inode] = {}

            def image(ino: int) -> _Inode:
                if ino not in copies:
                    copies[ino] = _Inode(ino, bytearray(self._inodes[ino].durable))
                return copies[ino]

            for path, entries in self._durable_dirs.items():
                after._dirs[path] = {name: image(inode.ino) for name, inode in entries.items()}
            if cut is not None:
                self._replay_cut(cut, after, image)
            for inode in copies.values():
                inode.durable = bytes(inode.data)
            after._durable_dirs = {path: dict(entries) for path, entries in after._dirs.items()}
            after._inodes = dict(copies)
            after._next_ino = self._next_ino
            after._next_seq = self._next_seq
            return after

    def _replay_cut(self, cut: PowerCut, after: MemFileSystem,
                    image: Callable[[int], _Inode]) -> None:
        survivors = cut.keep | frozenset(cut.torn)
        effects: list[tuple[int, FsOp | _Entry]] = [(p.seq, p) for p in self._pending_data]
        effects.extend((e.seq, e) for e in self._pending_entries)
        effects.sort(key=lambda pair: pair[0])
        for seq, effect in effects:
            if seq not in survivors:
                continue
            if isinstance(effect, _Entry):
                entries = after._dirs[effect.directory]
                if effect.ino is None:
                    entries.pop(effect.name, None)
                else:
                    entries[effect.name] = image(effect.ino)
            elif effect.kind is FsOpKind.WRITE_FILE:
                image(effect.ino).data[:] = effect.data
            else:
                _apply_data(image(effect.ino).data, effect, cut.torn.get(seq, effect.data))

    def files(self) -> dict[str, bytes]:
        """Every file's current content by path (for assertions)."""
        return {
            posixpath.join(d, name): bytes(inode.data)
            for d, entries in self._dirs.items()
            for name, inode in entries.items()
        }


def _split_path(path: str) -> tuple[str, str]:
    path = posixpath.normpath(path)
    return posixpath.dirname(path) or ".", posixpath.basename(path)


def _entries(op: FsOp) -> list[_Entry]:
    """The directory entry changes of a CREATE/WRITE_FILE/RENAME/UNLINK."""
    d, name = _split_path(op.path)
    if op.kind is FsOpKind.UNLINK:
        return [_Entry(op.seq, d, name, None)]
    if op.kind is FsOpKind.RENAME:
        dd, dn = _split_path(op.dst)
        return [_Entry(op.seq, d, name, None), _Entry(op.seq, dd, dn, op.ino)]
    return [_Entry(op.seq, d, name, op.ino)]


def _apply_data(buf: bytearray, op: FsOp, data: bytes) -> None:
    """Apply a WRITE (with ``data``, possibly torn), ALLOCATE or TRUNCATE to ``buf``."""
    if op.kind is FsOpKind.WRITE:
        offset = op.offset
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset : offset + len(data)] = data
    elif op.kind is FsOpKind.ALLOCATE:
        if op.offset > len(buf):
            buf.extend(bytes(op.offset - len(buf)))
    else:
        del buf[op.offset :]
