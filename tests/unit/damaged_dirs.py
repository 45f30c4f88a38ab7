"""Working directories written by the real engine and then damaged, for the offline
tool's tests and for the README's examples (``python -m tests.unit.damaged_dirs KIND DIR``).

Every directory holds the same history: 30 PUTs and a DELETE spread over several
small segments, a snapshot at LSN 31, then 40 more PUTs (two more segments). The
server was "stopped" after that; the damage is done with plain file operations.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from storage import Op
from storage.format import encode_frame
from tests.unit.storage_util import (
    append,
    flip_bit,
    frame_spans,
    opened,
    options,
    read,
    segment_paths,
)

OPTIONS = options(segment_bytes=4096)
"""Small segments, no automatic snapshot, none on close (so the WAL stays)."""
SNAPSHOT_LSN = 31
LAST_LSN = 71
KEYS_AT_END = 69
"""``user:0001``..``user:0030`` minus ``user:0007``, and ``order:0001``..``order:0040``."""
KEYS_AT_SNAPSHOT = 29

TORN_FRAME = encode_frame(LAST_LSN + 1, [(int(Op.PUT), b"order:0041", b"o" * 60)])
"""The frame a crash cut short: ``torn-tail`` keeps its first 40 bytes."""
TORN_KEPT = 40


def write_history(root: str) -> None:
    """The history every kind starts from (see the module docstring)."""
    with opened(root, OPTIONS) as engine:
        for i in range(1, 31):
            engine.write(Op.PUT, b"user:%04d" % i, b"name-%04d;" % i * 10)
        engine.write(Op.DELETE, b"user:0007")
        engine.checkpoint()
        for i in range(1, 41):
            engine.write(Op.PUT, b"order:%04d" % i, b"item-%04d;" % i * 12)


def clean(root: str) -> None:
    """The history as a clean stop left it."""
    write_history(root)


def torn_tail(root: str) -> None:
    """A crash while the next group was being written: half a frame at the end."""
    write_history(root)
    append(segment_paths(root)[-1], TORN_FRAME[:TORN_KEPT])


def mid_log_damage(root: str) -> None:
    """One flipped bit inside the second frame of the newest segment (frames follow)."""
    write_history(root)
    newest = segment_paths(root)[-1]
    start, end = frame_spans(read(newest))[1]
    flip_bit(newest, (start + end) // 2)


def missing_segment(root: str) -> None:
    """The segment after the snapshot's is gone (deleted by hand, lost by the disk)."""
    write_history(root)
    os.unlink(segment_paths(root)[-2])


KINDS: dict[str, Callable[[str], None]] = {
    "clean": clean,
    "torn-tail": torn_tail,
    "mid-log-damage": mid_log_damage,
    "missing-segment": missing_segment,
}


def main(argv: list[str]) -> int:
    """``python -m tests.unit.damaged_dirs KIND DIR``: write one of them at DIR."""
    if len(argv) != 2 or argv[0] not in KINDS or os.path.exists(argv[1]):
        sys.stderr.write(f"usage: python -m tests.unit.damaged_dirs {{{','.join(KINDS)}}} "
                         "NEW_DIR\n")
        return 2
    KINDS[argv[0]](argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
