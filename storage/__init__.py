"""walkv's storage engine: write-ahead log with group commit, snapshots, recovery.

This package is the only interface the server uses; it can be embedded in any
Python program::

    from storage import Engine, Op
    engine = Engine.open("./data")
    engine.write(Op.PUT, b"key", b"value")   # returns once durable
    engine.get(b"key")
    engine.close()
"""

from storage.checkpoint import CheckpointMode, CheckpointPolicy
from storage.committer import GroupSink, Outcome, Write
from storage.engine import Engine, EngineOptions
from storage.errors import (
    CorruptionError,
    EngineClosedError,
    EngineFailedError,
    LockHeldError,
    StorageError,
)
from storage.format import Op
from storage.recovery import RecoveryMode, RecoveryReport

__all__ = [
    "CheckpointMode",
    "CheckpointPolicy",
    "CorruptionError",
    "Engine",
    "EngineClosedError",
    "EngineFailedError",
    "EngineOptions",
    "GroupSink",
    "LockHeldError",
    "Op",
    "Outcome",
    "RecoveryMode",
    "RecoveryReport",
    "StorageError",
    "Write",
]
