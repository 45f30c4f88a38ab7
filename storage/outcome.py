"""What happened to an operation: the one vocabulary the engine and every front end share.

The committer decides a commit group's outcome (``OK``, ``NO_SPACE`` or ``FAILED``,
shared by all of its writes); a read that finds nothing is ``NOT_FOUND``; a write the
engine refused because it is closing is ``CLOSING``. Each protocol turns outcomes into
its own wire answers in one table (``server/http/replies.py`` for HTTP).
"""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """The result of one operation. Values index protocol answer tables (not on disk)."""

    OK = 0
    """Done: a write is durable and applied, a read found its key."""
    NOT_FOUND = 1
    """A read of a key that holds no value."""
    NO_SPACE = 2
    """The device was full: the write was not applied; later writes are tried normally."""
    FAILED = 3
    """The log failed (write or fsync error): writes are refused until restart."""
    CLOSING = 4
    """The engine is closing and takes no more writes."""
