"""Snapshot files: the whole table as of one LSN, checksummed, replaced atomically."""

from __future__ import annotations

import posixpath
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
    unpack_u32,
)
from storage.fs import FileSystem, write_atomically


def snapshot_path(root: str, lsn: int) -> str:
    """Where the snapshot for ``lsn`` lives."""
    return posixpath.join(root, SNAP_DIR, snapshot_name(lsn))


def encode_snapshot(lsn: int, table: dict[bytes, bytes]) -> list[bytes]:
    """The snapshot file's bytes as chunks: header, body, trailer."""
    body: bytes = msgpack.packb(table, use_bin_type=True)
    header = encode_snapshot_header(lsn, len(table), len(body))
    crc = crc32c.crc32c(body, crc32c.crc32c(header))
    return [header, body, pack_u32(crc)]


def write_snapshot(fs: FileSystem, root: str, lsn: int, table: dict[bytes, bytes]) -> str:
    """Durably write the snapshot of ``table`` at ``lsn``; returns its path."""
    path = snapshot_path(root, lsn)
    write_atomically(fs, path, encode_snapshot(lsn, table))
    return path


def read_snapshot(fs: FileSystem, path: str, expected_lsn: int) -> dict[bytes, bytes]:
    """The table stored in a snapshot, after verifying every check; else raises."""
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
        table: Any = msgpack.unpackb(view[SNAPSHOT_HEADER_SIZE:body_end], raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise SnapshotDamagedError(f"body does not decode: {exc}", SNAPSHOT_HEADER_SIZE) from exc
    if not isinstance(table, dict) or len(table) != count:
        raise SnapshotDamagedError("body does not hold the key count in the header",
                                   _COUNT_FIELD)
    return table


# Offsets of header fields, for the byte an error names (see FORMAT.md).
_LSN_FIELD = 16
_COUNT_FIELD = 24
