"""The engine's counters as one typed value (``Engine.stats()``), for monitoring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from storage.checkpoint import CheckpointStats
from storage.format import Op
from storage.outcome import Outcome
from storage.recovery import RecoveryReport


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts per bucket (not cumulative): ``counts[i]`` values were at most
    ``bounds[i]`` and above the bound before it; the last count is above every bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    """Sum of every value counted."""

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """JSON-ready: ``{"bounds": [...], "counts": [...]}``."""
        return {"bounds": list(self.bounds), "counts": list(self.counts)}


@dataclass(frozen=True, slots=True)
class EngineStats:
    """Counters as of one moment. Cheap to take: nothing scans the table."""

    keys: int
    """Keys in the table (expired keys count until the sweep deletes them)."""
    expiring_keys: int
    """Keys with a deadline."""
    operations: int
    """Transactions and scans evaluated by the committer."""
    reaped: int
    """Expired keys deleted by the sweep."""
    last_lsn: int
    """LSN of the last committed record."""
    groups: int
    """Commit groups made durable (one synced write each)."""
    records: int
    """Writes committed."""
    committed: Mapping[Op, int]
    """Writes committed, by op."""
    refused: Mapping[Outcome, Mapping[Op, int]]
    """Writes the committer did not apply (NO_SPACE, FAILED), by op."""
    max_group: int
    group_size: Histogram
    """Writes per commit group."""
    sync: Histogram
    """Seconds of one group's synced write."""
    no_space_groups: int
    out_of_space: bool
    """The last group found the device full and none has committed since."""
    failed: str | None
    """Why writes are refused until restart, once the log failed."""
    wal_bytes_written: int
    segments: int
    """WAL segment files on disk."""
    checkpoints: CheckpointStats
    recovery: RecoveryReport
    """What this start's recovery did."""

    @property
    def mean_group(self) -> float:
        """Writes per commit group, on average."""
        return self.records / self.groups if self.groups else 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, with the key names ``GET /stats`` has always shown."""
        ckpt = self.checkpoints
        return {
            "keys": self.keys,
            "expiring_keys": self.expiring_keys,
            "operations": self.operations,
            "expired_keys_reaped": self.reaped,
            "last_lsn": self.last_lsn,
            "groups": self.groups,
            "records": self.records,
            "records_by_op": {op.name: n for op, n in self.committed.items()},
            "refused_by_outcome": {outcome.name: {op.name: n for op, n in by_op.items()}
                                   for outcome, by_op in self.refused.items()},
            "mean_group": self.mean_group,
            "max_group": self.max_group,
            "group_size": self.group_size.to_dict(),
            "fsync_seconds": self.sync.total,
            "fsync_latency": self.sync.to_dict(),
            "no_space_groups": self.no_space_groups,
            "out_of_space": self.out_of_space,
            "wal_bytes_written": self.wal_bytes_written,
            "wal_bytes_since_snapshot": ckpt.wal_bytes_since_snapshot,
            "segments": self.segments,
            "snapshots": list(ckpt.snapshots),
            "checkpoint_running": ckpt.running,
            "checkpoints_completed": ckpt.completed,
            "checkpoints_failed": ckpt.failed,
            "checkpoint_last_error": ckpt.last_error,
            "checkpoint_last_start_pause_seconds": ckpt.last_start_pause_seconds,
            "checkpoint_last_duration_seconds": ckpt.last_duration_seconds,
            "snapshot_last_bytes": ckpt.last_bytes,
            "snapshot_last_written_at": ckpt.last_written_at,
            "failed": self.failed,
            "recovery": self.recovery.to_dict(),
        }
