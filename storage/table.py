"""Applying committed records to the in-memory table: one rule, used by the committer
after each fsync and by recovery while replaying the WAL."""

from __future__ import annotations

from collections.abc import Sequence

from storage.format import Op

_PUT, _DELETE = Op.PUT, Op.DELETE  # bound once: enum attribute lookups are slow


def apply_group(table: dict[bytes, bytes], ops: bytes, keys: Sequence[bytes],
                values: Sequence[bytes | None]) -> None:
    """Apply records (given column-wise, in log order) to ``table``."""
    if ops.count(_PUT) == len(ops):
        # The common group, all PUTs: one C-level update, no loop in Python.
        table.update(zip(keys, values, strict=True))  # type: ignore[arg-type]
        return
    for op, key, value in zip(ops, keys, values, strict=True):
        if op == _PUT:
            table[key] = value  # type: ignore[assignment]
        elif op == _DELETE:
            table.pop(key, None)
        else:
            table.clear()
