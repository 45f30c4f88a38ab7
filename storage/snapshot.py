"""Snapshot files: the whole table as of one LSN, checksummed, replaced atomically."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

import crc32c
import msgpack

from storage.errors import SnapshotDamagedError
from storage.format import (
    SNAP_DIR,
    SNAPSHOT_HEADER_SIZE,
    SNAPSHOT_TRAILER_SIZE,
    decode_snapshot_header,
    encode_snapshot_header,
    pack_u32,
    snapshot_name,
    snapshot_version,
    unpack_u32,
)
from storage.fs import FileSystem, write_atomically


def snapshot_path(root: str, lsn: int) -> str:
    """Where the snapshot for ``lsn`` lives."""
    return posixpath.join(root, SNAP_DIR, snapshot_name(lsn))


@dataclass(slots=True)
class Contents:
    """What a snapshot holds: the table at its LSN."""

    values: dict[bytes, bytes]
    expires: dict[bytes, int] = field(default_factory=dict)
    """Deadlines (ms since the epoch) of the keys that have one."""
    clock_ms: int = 0
    """The latest commit time at the snapshot's LSN (0 in version 1 files)."""
    in_order: bool = False
    """``values`` iterates in ascending key order (always so in version 2 files)."""


def encode_snapshot(lsn: int, contents: Contents) -> list[bytes]:
    """The snapshot file's bytes as chunks: header, body, trailer (version 2)."""
    values = contents.values
    ordered = values if contents.in_order else {k: values[k] for k in sorted(values)}
    body: bytes = msgpack.packb([contents.clock_ms, ordered, contents.expires],
                                use_bin_type=True)
    header = encode_snapshot_header(lsn, len(values), len(body))
    crc = crc32c.crc32c(body, crc32c.crc32c(header))
    return [header, body, pack_u32(crc)]


def write_snapshot(fs: FileSystem, root: str, lsn: int, contents: Contents) -> str:
    """Durably write the snapshot of ``contents`` at ``lsn``; returns its path."""
    path = snapshot_path(root, lsn)
    write_atomically(fs, path, encode_snapshot(lsn, contents))
    return path


def read_snapshot(fs: FileSystem, path: str, expected_lsn: int) -> Contents:
    """What a snapshot holds, after verifying every check; else raises."""
    data = fs.read_bytes(path)
    header = decode_snapshot_header(data)
    if header is None:
        raise SnapshotDamagedError("bad header")
    lsn, count, body_len = header
    if lsn != expected_lsn:
        raise SnapshotDamagedError(f"header says LSN {lsn}, file name says {expected_lsn}",
                                   _LSN_FIELD)
    if len(data) != SNAPSHOT_HEADER_SIZE + body_len + SNAPSHOT_TRAILER_SIZE:
        raise SnapshotDamagedError(f"size {len(data)} does not match header",
                                   min(len(data), SNAPSHOT_HEADER_SIZE + body_len))
    body_end = SNAPSHOT_HEADER_SIZE + body_len
    view = memoryview(data)
    if crc32c.crc32c(view[:body_end]) != unpack_u32(view, body_end):
        raise SnapshotDamagedError("checksum mismatch", body_end)
    try:
        body: Any = msgpack.unpackb(view[SNAPSHOT_HEADER_SIZE:body_end], raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SnapshotDamagedError(f"body does not decode: {exc}", SNAPSHOT_HEADER_SIZE) from exc
    contents = _contents(body) if snapshot_version(data) >= 2 else Contents(body)
    if not isinstance(contents.values, dict) or len(contents.values) != count:
        raise SnapshotDamagedError("body does not hold the key count in the header",
                                   _COUNT_FIELD)
    return contents


def _contents(body: Any) -> Contents:
    if (type(body) is not list or len(body) != 3 or type(body[0]) is not int
            or type(body[2]) is not dict):
        raise SnapshotDamagedError("body has the wrong shape", SNAPSHOT_HEADER_SIZE)
    clock_ms, values, expires = body
    if not all(type(d) is int for d in expires.values()):
        raise SnapshotDamagedError("a deadline is not an integer", SNAPSHOT_HEADER_SIZE)
    return Contents(values, expires, clock_ms, in_order=True)


# Offsets of header fields, for the byte an error names (see FORMAT.md).
_LSN_FIELD = 16
_COUNT_FIELD = 24
