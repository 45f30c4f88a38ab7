"""Errors raised by the storage engine.

Every class says when it is raised and carries the fields a caller needs to report
it (path, byte offset) without parsing the message.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class for every error the storage engine raises on purpose."""


class LockHeldError(StorageError):
    """The working directory's LOCK is held by another live process."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by another walkv process ({holder})")


class CorruptionError(StorageError):
    """Damage before the log tail, an LSN gap, or a missing segment.

    Raised by recovery in strict mode; never skipped silently. ``path`` and
    ``offset`` name the first byte that could not be trusted.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"{path} at byte {offset}: {reason}")


class EngineFailedError(StorageError):
    """The engine is in the sticky failed state after a WAL write or fsync error.

    Writes are refused until restart; reads keep working.
    """

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"storage unavailable: {cause}")


class EngineClosedError(StorageError):
    """A write was submitted after close() began."""


class NoSpaceError(OSError):
    """A WAL write did not fit on the device; nothing of it remains in the log.

    An ``OSError`` with ``errno.ENOSPC``, so code that handles any ENOSPC handles it.
    """


class FrameDecodeError(StorageError):
    """The bytes at a WAL position are not a valid frame (the reason is the message).

    Whether that is a torn tail or corruption is for ``storage.wal.scan`` to decide.
    """


class SnapshotDamagedError(StorageError):
    """A snapshot file failed verification (the message says which check).

    ``offset`` is the byte where the failed check looked: the header field, the
    trailer, or the body.
    """

    def __init__(self, reason: str, offset: int = 0) -> None:
        self.offset = offset
        super().__init__(reason)


class InvalidOperationError(StorageError, ValueError):
    """A transaction or scan handed to the engine breaks a rule (too many steps, a key
    that is not bytes, a negative deadline...); nothing of its batch was queued."""
