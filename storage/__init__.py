"""walkv's storage engine: write-ahead log with group commit, snapshots, recovery.

This package is the only interface the server uses; it can be embedded in any
Python program::

    from storage import Engine, Op
    engine = Engine.open("./data")
    engine.write(Op.PUT, b"key", b"value")   # returns once durable
    engine.get(b"key")
    engine.close()

The modules, imports pointing down (no asyncio, no sockets anywhere here)::

    engine.py          the facade: open (lock + recover), get, submit, close, stats
    committer.py       group commit: one thread, one synced write per group
    ops.py             transactions and scans, evaluated in commit order into effects
    keyspace.py        the committed table: values, expiry deadlines, key order
    checkpoint.py      when to snapshot, starting one, retiring what it covers
    snapshot_writer.py a snapshot written by a forked child or a thread
    recovery.py        newest valid snapshot + WAL replay, torn tail vs corruption
    wal/               the log: log.py (segments), writer.py, reader.py, scan.py
    snapshot.py        snapshot files
    format.py          the on-disk format in code (FORMAT.md in prose)
    fs.py              the filesystem seam every byte goes through
    outcome.py, stats.py, errors.py   what crosses to callers
    offline/           python -m storage: check, dump, repair, stats
    testing/           a filesystem that simulates power loss and faults; file layout
"""

from storage.checkpoint import CheckpointPolicy, CheckpointStats
from storage.committer import GroupSink, Write
from storage.engine import Engine, EngineOptions
from storage.errors import (
    CorruptionError,
    EngineClosedError,
    EngineFailedError,
    InvalidOperationError,
    LockHeldError,
    StorageError,
)
from storage.format import Op, Record
from storage.keyspace import Keyspace
from storage.ops import (
    SCAN_MAX_LIMIT,
    TXN_MAX_STEPS,
    Add,
    AddFloat,
    Append,
    Check,
    Compare,
    Expire,
    Fetch,
    Flush,
    Inspect,
    OperationResult,
    Page,
    Remove,
    Rename,
    Scan,
    SetRange,
    Step,
    StepFailure,
    StepResult,
    Store,
    Txn,
    TxnResult,
    Unwatch,
    Watch,
    When,
    check_operation,
    etag,
)
from storage.outcome import Outcome
from storage.recovery import RecoveryMode, RecoveryReport
from storage.snapshot_writer import CheckpointMode
from storage.stats import EngineStats, Histogram

__all__ = [
    "SCAN_MAX_LIMIT",
    "TXN_MAX_STEPS",
    "Add",
    "AddFloat",
    "Append",
    "Check",
    "CheckpointMode",
    "CheckpointPolicy",
    "CheckpointStats",
    "Compare",
    "CorruptionError",
    "Engine",
    "EngineClosedError",
    "EngineFailedError",
    "EngineOptions",
    "EngineStats",
    "Expire",
    "Fetch",
    "Flush",
    "GroupSink",
    "Histogram",
    "Inspect",
    "InvalidOperationError",
    "Keyspace",
    "LockHeldError",
    "Op",
    "OperationResult",
    "Outcome",
    "Page",
    "Record",
    "RecoveryMode",
    "RecoveryReport",
    "Remove",
    "Rename",
    "Scan",
    "SetRange",
    "Step",
    "StepFailure",
    "StepResult",
    "StorageError",
    "Store",
    "Txn",
    "TxnResult",
    "Unwatch",
    "Watch",
    "When",
    "Write",
    "check_operation",
    "etag",
]
