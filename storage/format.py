"""On-disk format of walkv: constants, struct layouts and frame/header codecs.

Everything in this module is part of the on-disk format described in
``storage/FORMAT.md``. Changing a constant here changes the format: bump the
version and teach the reader the old one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import crc32c
import msgpack

from storage.errors import FrameDecodeError


class Op(IntEnum):
    """Operation codes stored in WAL frames (on-disk values, never renumber).

    ``EVALUATE`` is the one exception: it is never stored. It marks a write handed to
    the committer that carries a ``storage.ops.Txn`` to evaluate into stored effects.
    """

    EVALUATE = 0
    PUT = 1
    DELETE = 2
    CLEAR = 3
    EXPIRE = 4
    """Set (deadline) or remove (nil) the expiry of a key that exists; value is nil."""


# Bound once for the per-frame checks (enum attribute lookups are slow).
_PUT, _CLEAR, _EXPIRE = Op.PUT, Op.CLEAR, Op.EXPIRE


# -- WAL segment header ---------------------------------------------------------------
# magic(8) | version u32 | first_lsn u64 | crc32c u32 over the preceding 20 bytes
SEGMENT_MAGIC = b"walkvWAL"
SEGMENT_VERSION = 2
SEGMENT_VERSIONS = (1, 2)
"""Versions a reader accepts: version 1 segments hold version 1 frames (no expiry)."""
SEGMENT_HEADER = "<8sIQI"
SEGMENT_HEADER_SIZE = 24
assert struct.calcsize(SEGMENT_HEADER) == SEGMENT_HEADER_SIZE

# -- WAL frame --------------------------------------------------------------------------
# length u32 (payload bytes) | crc32c u32 over (length field + payload) | payload
# payload = msgpack array [first_lsn, ops, keys, values, deadlines, time_ms]: one commit
# group, column-wise; ops is a bin of one Op byte per record, keys an array of bin,
# values an array of bin (PUT) or nil (DELETE, CLEAR, EXPIRE); deadlines is nil when no
# record of the group has one, else an array of uint (ms since the epoch) or nil;
# time_ms is the wall clock when the group committed. Version 1 payloads are the
# first four elements only. Columns let a reader check and apply a whole group with a
# few C-level calls instead of a Python loop per record.
FRAME_HEADER = "<II"
FRAME_HEADER_SIZE = 8
assert struct.calcsize(FRAME_HEADER) == FRAME_HEADER_SIZE
# Every payload starts with a msgpack fixarray of six elements (four in version 1).
# Recovery uses this byte to find candidate frames after damage.
FRAME_PAYLOAD_MARKER = 0x96
FRAME_PAYLOAD_MARKER_V1 = 0x94
# No frame is ever larger than this; a bigger length field is damage, not data.
MAX_FRAME_PAYLOAD = 1 << 31

# -- Snapshot ---------------------------------------------------------------------------
# magic(8) | version u32 | reserved u32 | lsn u64 | count u64 | body_len u64
# then body then crc32c u32 over header + body. Version 2 body: msgpack array
# [time_ms, map key -> value in ascending key order, map key -> deadline ms];
# version 1 body: the map key -> value alone, in any order.
SNAPSHOT_MAGIC = b"walkvSNP"
SNAPSHOT_VERSION = 2
SNAPSHOT_VERSIONS = (1, 2)
SNAPSHOT_HEADER = "<8sIIQQQ"
SNAPSHOT_HEADER_SIZE = 40
assert struct.calcsize(SNAPSHOT_HEADER) == SNAPSHOT_HEADER_SIZE
SNAPSHOT_TRAILER = "<I"
SNAPSHOT_TRAILER_SIZE = 4

# -- File naming ------------------------------------------------------------------------
WAL_DIR = "wal"
SNAP_DIR = "snap"
LOCK_NAME = "LOCK"
WAL_SUFFIX = ".wal"
SNAP_SUFFIX = ".snap"
TMP_SUFFIX = ".tmp"
BROKEN_SUFFIX = ".broken"

_frame_header = struct.Struct(FRAME_HEADER)
_segment_header = struct.Struct(SEGMENT_HEADER)
_snapshot_header = struct.Struct(SNAPSHOT_HEADER)
_u32 = struct.Struct("<I")

Record = tuple[int, bytes, bytes | None]
"""One operation as stored in a frame: (op, key, value). CLEAR has key b"" and value None."""


def segment_name(first_lsn: int) -> str:
    """File name of the WAL segment whose first frame has ``first_lsn``."""
    return f"{first_lsn:016x}{WAL_SUFFIX}"


def snapshot_name(lsn: int) -> str:
    """File name of the snapshot that includes every record up to ``lsn``."""
    return f"{lsn:016x}{SNAP_SUFFIX}"


def parse_name(name: str, suffix: str) -> int | None:
    """The LSN encoded in a segment or snapshot file name, or None if not one of ours."""
    if len(name) != 16 + len(suffix) or not name.endswith(suffix):
        return None
    try:
        return int(name[:16], 16)
    except ValueError:
        return None


def encode_segment_header(first_lsn: int) -> bytes:
    """The fixed header every WAL segment begins with."""
    head = _segment_header.pack(SEGMENT_MAGIC, SEGMENT_VERSION, first_lsn, 0)[:-4]
    return head + _u32.pack(crc32c.crc32c(head))


def decode_segment_header(data: bytes | memoryview) -> int | None:
    """The first LSN from a segment header, or None if the header is not intact."""
    if len(data) < SEGMENT_HEADER_SIZE:
        return None
    magic, version, first_lsn, crc = _segment_header.unpack_from(data)
    if magic != SEGMENT_MAGIC or version not in SEGMENT_VERSIONS:
        return None
    if crc != crc32c.crc32c(bytes(data[: SEGMENT_HEADER_SIZE - 4])):
        return None
    return int(first_lsn)


def encode_group(first_lsn: int, ops: bytes, keys: Sequence[bytes],
                 values: Sequence[bytes | None], deadlines: Sequence[int | None] | None,
                 time_ms: int) -> bytes:
    """One WAL frame holding a whole commit group, given column-wise."""
    payload = msgpack.packb([first_lsn, ops, keys, values, deadlines, time_ms],
                            use_bin_type=True)
    length = _u32.pack(len(payload))
    crc = crc32c.crc32c(payload, crc32c.crc32c(length))
    return length + _u32.pack(crc) + payload


def encode_frame(first_lsn: int, records: list[Record],
                 deadlines: Sequence[int | None] | None = None, time_ms: int = 0) -> bytes:
    """One WAL frame holding ``records`` (op, key, value) as one commit group."""
    return encode_group(first_lsn, bytes(int(r[0]) for r in records),
                        [r[1] for r in records], [r[2] for r in records], deadlines, time_ms)


def check_frame(buf: bytes | memoryview, offset: int) -> int:
    """Length of the valid frame's payload at ``offset``; raises FrameDecodeError otherwise.

    Only the framing (length and checksum) is checked here, not the payload's shape.
    """
    end = len(buf)
    if end - offset < FRAME_HEADER_SIZE:
        raise FrameDecodeError("short frame header")
    length, crc = _frame_header.unpack_from(buf, offset)
    if length == 0:
        raise FrameDecodeError("zero length")
    if length > MAX_FRAME_PAYLOAD:
        raise FrameDecodeError("length out of range")
    start = offset + FRAME_HEADER_SIZE
    if start + length > end:
        raise FrameDecodeError("frame runs past end of file")
    actual = crc32c.crc32c(buf[start : start + length], crc32c.crc32c(buf[offset : offset + 4]))
    if actual != crc:
        raise FrameDecodeError("checksum mismatch")
    return int(length)


Group = tuple[int, bytes, list[bytes], list["bytes | None"], "list[int | None] | None", int]
"""A decoded frame payload: (first_lsn, ops, keys, values, deadlines, time_ms), checked.
A version 1 payload decodes with deadlines None and time_ms 0."""


def decode_group(payload: bytes | memoryview) -> Group:
    """The columns of a payload whose checksum already verified (see ``Group``).

    Every shape rule of the format is checked (a CRC only proves the bytes are what
    was written), with C-level calls for the common all-PUT group.
    """
    try:
        obj: Any = msgpack.unpackb(payload, use_list=True, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise FrameDecodeError(f"payload is not msgpack: {exc}") from exc
    if type(obj) is not list or len(obj) not in (4, 6):
        raise FrameDecodeError("payload has the wrong shape")
    if len(obj) == 6:
        first_lsn, ops, keys, values, deadlines, time_ms = obj
        if type(time_ms) is not int or time_ms < 0:
            raise FrameDecodeError("payload has the wrong shape")
    else:
        first_lsn, ops, keys, values = obj
        deadlines, time_ms = None, 0
    if (type(first_lsn) is not int or first_lsn < 1 or type(ops) is not bytes
            or type(keys) is not list or type(values) is not list):
        raise FrameDecodeError("payload has the wrong shape")
    n = len(ops)
    if n == 0 or len(keys) != n or len(values) != n:
        raise FrameDecodeError("payload columns are empty or of different lengths")
    if ops.translate(None, _OP_BYTES):
        raise FrameDecodeError("record has an unknown op")
    if not _all_bytes(keys):
        raise FrameDecodeError("record has a non-bytes key")
    if ops.count(_PUT) == n:
        if not _all_bytes(values):
            raise FrameDecodeError("PUT record has a non-bytes value")
    else:
        _check_mixed(ops, keys, values)
    if deadlines is not None:
        _check_deadlines(ops, deadlines)
    return first_lsn, ops, keys, values, deadlines, time_ms


def _all_bytes(items: list[Any]) -> bool:
    return set(map(type, items)) == {bytes}


def _check_mixed(ops: bytes, keys: list[bytes], values: list[Any]) -> None:
    for op, key, value in zip(ops, keys, values, strict=True):
        if op == _PUT:
            if type(value) is not bytes:
                raise FrameDecodeError("PUT record has a non-bytes value")
        elif value is not None or (op == _CLEAR and key):
            raise FrameDecodeError("DELETE or CLEAR record carries a value or key")


def _check_deadlines(ops: bytes, deadlines: Any) -> None:
    if type(deadlines) is not list or len(deadlines) != len(ops):
        raise FrameDecodeError("payload deadline column has the wrong shape")
    for op, deadline in zip(ops, deadlines, strict=True):
        if deadline is None:
            continue
        if type(deadline) is not int or deadline < 0 or op not in (_PUT, _EXPIRE):
            raise FrameDecodeError("record has a deadline it cannot carry")


def decode_payload(payload: bytes | memoryview) -> tuple[int, list[Record]]:
    """(first_lsn, records) from a frame payload: the row-wise view, for tools."""
    first_lsn, ops, keys, values, _, _ = decode_group(payload)
    return first_lsn, list(zip(ops, keys, values, strict=True))


_OP_BYTES = bytes(int(op) for op in Op if op is not Op.EVALUATE)
"""Ops a frame may hold."""


def encode_snapshot_header(lsn: int, count: int, body_len: int) -> bytes:
    """The fixed header of a snapshot file."""
    return _snapshot_header.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 0, lsn, count, body_len)


def decode_snapshot_header(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """(lsn, count, body_len) from a snapshot header, or None if it is not one."""
    if len(data) < SNAPSHOT_HEADER_SIZE:
        return None
    magic, version, _reserved, lsn, count, body_len = _snapshot_header.unpack_from(data)
    if magic != SNAPSHOT_MAGIC or version not in SNAPSHOT_VERSIONS:
        return None
    return int(lsn), int(count), int(body_len)


def snapshot_version(data: bytes | memoryview) -> int:
    """The format version of a snapshot whose header ``decode_snapshot_header`` accepted."""
    return int(_u32.unpack_from(data, 8)[0])


def pack_u32(value: int) -> bytes:
    """Little-endian u32 (checksums and trailers)."""
    return _u32.pack(value)


def unpack_u32(data: bytes | memoryview, offset: int = 0) -> int:
    """Little-endian u32 at ``offset``."""
    return int(_u32.unpack_from(data, offset)[0])
