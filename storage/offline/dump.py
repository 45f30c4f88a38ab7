"""``dump DIR``: every valid WAL frame and its operations, oldest first.

Segments are read one by one, each on its own (``files.SegmentReading``), so a dump
goes on past damage; wherever a segment's valid frames stop early (damage, torn tail,
zeros) it says so. Text shows keys for a terminal; JSON (one object a line) is exact.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from storage.format import Op, Record
from storage.fs import FileSystem
from storage.offline.files import SegmentReading, segment_files
from storage.offline.render import Output, plural
from storage.wal.scan import SegmentOutcome, Verdict


@dataclass(frozen=True, slots=True)
class DumpedFrame:
    """A valid frame, where it is and what it holds."""

    path: str
    offset: int
    size: int
    first_lsn: int
    records: list[Record]
    deadlines: list[int | None] | None = None
    """Each record's deadline (ms since the epoch), or None when no record has one."""
    time_ms: int = 0
    """When the group committed (ms since the epoch; 0 in version 1 segments)."""

    def deadline(self, index: int) -> int | None:
        """The deadline of record ``index``, if it has one."""
        return None if self.deadlines is None else self.deadlines[index]


@dataclass(frozen=True, slots=True)
class DumpedEnd:
    """Where a segment's valid frames stop, when anything but a clean end follows."""

    path: str
    outcome: SegmentOutcome
    tail_bytes: int
    tail_nonzero: int


def run(fs: FileSystem, root: str, out: TextIO, *, from_lsn: int, as_json: bool,
        values: bool) -> bool:
    """Print the frames holding LSNs >= ``from_lsn`` (text, or one JSON object a line;
    ``values``: the values too, not only their sizes). Always True: a dump judges nothing."""
    output = Output(root, out)
    for item in dump_frames(fs, root, from_lsn):
        if as_json:
            output.json(_json_object(output, item, values, from_lsn))
        elif isinstance(item, DumpedFrame):
            _print_frame(output, item, values, from_lsn)
        else:
            _print_end(output, item)
    return True


def dump_frames(fs: FileSystem, root: str, from_lsn: int = 0) -> Iterator[DumpedFrame | DumpedEnd]:
    """Every valid frame holding an LSN >= ``from_lsn``, segment by segment, with an
    entry wherever a segment's frames stop early (damage, torn tail, zeros)."""
    segments = segment_files(fs, root)
    for i, segment in enumerate(segments):
        if i + 1 < len(segments) and segments[i + 1].first_lsn <= from_lsn:
            continue  # wholly before from_lsn
        reading = SegmentReading(fs, segment)
        for frame in reading.frames():
            if frame.first_lsn + frame.count > from_lsn:
                yield DumpedFrame(segment.path, frame.offset, frame.end - frame.offset,
                                  frame.first_lsn, frame.records, frame.deadlines,
                                  frame.time_ms)
        if reading.outcome.verdict is not Verdict.CLEAN:
            yield DumpedEnd(segment.path, reading.outcome, reading.tail_bytes,
                            reading.tail_nonzero)


def _numbered(first_lsn: int, records: list[Record],
              from_lsn: int) -> Iterator[tuple[int, Record]]:
    """The records of a frame with their LSNs, leaving out those before ``from_lsn``."""
    for i, record in enumerate(records):
        if first_lsn + i >= from_lsn:
            yield first_lsn + i, record


# -- JSON ------------------------------------------------------------------------------


def _json_object(output: Output, item: DumpedFrame | DumpedEnd, values: bool,
                 from_lsn: int) -> dict[str, Any]:
    path = output.rel(item.path)
    if isinstance(item, DumpedEnd):
        o = item.outcome
        return {"segment": path, "end": o.offset, "verdict": o.verdict.value,
                "reason": o.reason, "tail_bytes": item.tail_bytes,
                "tail_nonzero": item.tail_nonzero}
    records = [_json_record(lsn, record, values, item.deadline(lsn - item.first_lsn))
               for lsn, record in _numbered(item.first_lsn, item.records, from_lsn)]
    return {"segment": path, "offset": item.offset, "size": item.size,
            "first_lsn": item.first_lsn, "time_ms": item.time_ms, "records": records}


def _json_record(lsn: int, record: Record, values: bool,
                 deadline: int | None) -> dict[str, Any]:
    op, key, value = record
    rec: dict[str, Any] = {"lsn": lsn, "op": Op(op).name, **_bytes_field("key", key)}
    if value is not None:
        rec["value_size"] = len(value)
        if values:
            rec.update(_bytes_field("value", value))
    if deadline is not None or op == Op.EXPIRE:
        rec["deadline_ms"] = deadline
    return rec


def _bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` for UTF-8, else ``{name_b64: base64}``: JSON-safe and exact."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


# -- text ------------------------------------------------------------------------------


def _print_frame(output: Output, frame: DumpedFrame, values: bool, from_lsn: int) -> None:
    last = frame.first_lsn + len(frame.records) - 1
    lsns = f"LSN {frame.first_lsn}" + (f"-{last}" if last != frame.first_lsn else "")
    output.line(f"{output.rel(frame.path)}@{frame.offset}  {lsns}  "
                f"{plural(len(frame.records), 'record')}  {plural(frame.size, 'byte')}")
    for lsn, record in _numbered(frame.first_lsn, frame.records, from_lsn):
        output.line(_record_line(lsn, record, values)
                    + _expiry(record[0], frame.deadline(lsn - frame.first_lsn)))


def _record_line(lsn: int, record: Record, values: bool) -> str:
    op, key, value = record
    name = Op(op).name
    if value is None:
        return f"  {lsn:>8}  {name:<6}  {_show(key)}" if op != Op.CLEAR else f"  {lsn:>8}  {name}"
    shown = f" = {_show(value)}" if values else ""
    return f"  {lsn:>8}  {name:<6}  {_show(key)}  ({plural(len(value), 'byte')}){shown}"


def _expiry(op: int, deadline: int | None) -> str:
    if deadline is not None:
        when = datetime.fromtimestamp(deadline / 1000, UTC)
        return f"  expires {when.isoformat(timespec='milliseconds')}"
    return "  never expires" if op == Op.EXPIRE else ""


_ENDINGS = {Verdict.ZERO_TAIL: "zeros (preallocated space)", Verdict.TORN_TAIL: "torn tail",
            Verdict.TORN_HEADER: "torn segment header", Verdict.DAMAGED: "DAMAGED"}
"""How a dump names each way valid frames can stop early."""


def _print_end(output: Output, end: DumpedEnd) -> None:
    o = end.outcome
    why = f" ({o.reason})" if o.verdict is not Verdict.ZERO_TAIL else ""
    output.line(f"{output.rel(end.path)}@{o.offset}  end of valid frames: "
                f"{_ENDINGS[o.verdict]}: {plural(end.tail_bytes, 'byte')} follow, "
                f"{end.tail_nonzero:,} non-zero{why}")


def _show(data: bytes) -> str:
    """A key or value for a terminal: plain when printable UTF-8, else a bytes literal."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return text if text.isprintable() and text.strip() == text and text else repr(data)
