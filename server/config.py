"""Server configuration: one frozen dataclass, built from the command line and the
two environment variables that choose the build of the request path."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from storage import CheckpointMode, EngineOptions, RecoveryMode

KiB = 1 << 10
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the server can be told. Defaults are the safe, durable choices."""

    host: str = "127.0.0.1"
    """Address to listen on (loopback unless told otherwise)."""
    port: int = 8080
    """TCP port; 0 picks a free one (printed in the 'listening on' line)."""
    resp_port: int | None = None
    """TCP port for the Redis protocol on the same host; 0 picks a free one; None: off."""
    working_dir: str = "./data"
    """All state lives here (created if missing, locked while the server runs)."""
    max_value_bytes: int = 64 * MiB
    """Largest accepted value; larger PUTs get 413 without their body being read."""
    max_header_bytes: int = 64 * KiB
    """Largest request line + headers; larger gets 431."""
    idle_timeout: float = 120.0
    """Seconds a keep-alive connection may sit idle before the server closes it."""
    max_connections: int = 0
    """Open connections allowed at once (0: derived from the file-descriptor limit)."""
    backlog: int = 4096
    """Listen backlog: room for bursts of simultaneous connects."""
    shutdown_timeout: float = 15.0
    """On SIGTERM/SIGINT, how long requests already received may take to finish."""
    segment_bytes: int = 64 * MiB
    """WAL segment size before rotation."""
    checkpoint_bytes: int = 64 * MiB
    """WAL bytes between snapshots (bounds replay time at restart)."""
    group_max_bytes: int = 4 * MiB
    """Cap on one commit group's key+value bytes (one write + one fsync per group)."""
    checkpoint_mode: CheckpointMode = CheckpointMode.FORK
    """How snapshots are written: a forked child (default) or a thread with a copy."""
    recovery: RecoveryMode = RecoveryMode.STRICT
    """strict: refuse to start on damage before the log tail; point-in-time: keep the
    longest valid prefix and set the rest aside (loses acknowledged writes)."""
    unsafe_no_fsync: bool = False
    """UNSAFE, for benchmarks only: acknowledge writes without fsync."""
    log_level: str = "info"
    """debug, info, warning or error."""
    log_format: str = "text"
    """text (one line per event) or json (one JSON object per line)."""
    native: bool = True
    """Run the request path compiled when a current build exists (``WALKV_NATIVE=0``:
    interpreted, the same behaviour, for profilers that only see Python frames)."""
    native_build: str | None = None
    """Where the compiled build is (``WALKV_NATIVE_DIR``; default: ``.venv/walkv-native``
    in the checkout)."""

    def engine_options(self) -> EngineOptions:
        """The storage engine's part of the configuration."""
        return EngineOptions(
            segment_bytes=self.segment_bytes,
            group_max_bytes=self.group_max_bytes,
            checkpoint_bytes=self.checkpoint_bytes,
            checkpoint_mode=self.checkpoint_mode,
            recovery_mode=self.recovery,
            fsync=not self.unsafe_no_fsync,
        )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One clear line instead of argparse's usage block.
        sys.stderr.write(f"walkv: error: {message} (see --help)\n")
        sys.exit(2)


def _size(text: str) -> int:
    """A byte count: plain digits or with a K/M/G suffix (powers of 1024)."""
    units = {"k": KiB, "m": MiB, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        value = int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte size: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _number(kind: type[int] | type[float], low: float, high: float | None = None,
            what: str = "number") -> Callable[[str], Any]:
    """An argparse type: ``kind`` parsed from text, within [low, high]."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low:g}..{high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{what} out of range ({bounds}): {text!r}")
        return value

    return parse


_port = _number(int, 0, 65535, "port number")
_seconds = _number(float, 0.001, None, "number of seconds")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (also used to render --help)."""
    d = Config()
    p = _Parser(prog="walkv", description="walkv: a crash-durable key-value server over HTTP "
                                          "and the Redis protocol.")
    a = p.add_argument
    a("--host", default=d.host, help=f"address to listen on (default {d.host})")
    a("--port", type=_port, default=d.port, help=f"TCP port, 0 for any (default {d.port})")
    a("--resp-port", type=_port, default=d.resp_port,
      help="also serve the Redis protocol (RESP2/RESP3) on this TCP port, 0 for any "
           "(default: off)")
    a("--working-dir", default=d.working_dir,
      help=f"directory holding all state, created if missing (default {d.working_dir})")
    a("--max-value-bytes", type=_size, default=d.max_value_bytes,
      help="largest value accepted; bigger PUTs get 413 (default 64M)")
    a("--max-header-bytes", type=_size, default=d.max_header_bytes,
      help="largest request header section; bigger gets 431 (default 64K)")
    a("--idle-timeout", type=_seconds, default=d.idle_timeout,
      help=f"seconds before an idle keep-alive connection is closed (default {d.idle_timeout:g})")
    a("--max-connections", type=_number(int, 0, None, "count"), default=d.max_connections,
      help="open connections allowed at once (default: from the fd limit)")
    a("--backlog", type=_number(int, 1, None, "count"), default=d.backlog,
      help=f"listen backlog (default {d.backlog})")
    a("--shutdown-timeout", type=_seconds, default=d.shutdown_timeout,
      help="seconds to finish received requests on SIGTERM/SIGINT (default 15)")
    a("--segment-bytes", type=_size, default=d.segment_bytes,
      help="WAL segment size before rotation (default 64M)")
    a("--checkpoint-bytes", type=_size, default=d.checkpoint_bytes,
      help="WAL bytes between snapshots; 0 = only at shutdown (default 64M)")
    a("--group-max-bytes", type=_size, default=d.group_max_bytes,
      help="cap on key+value bytes in one commit group (default 4M)")
    a("--checkpoint-mode", type=CheckpointMode, choices=list(CheckpointMode),
      metavar="{fork,thread}", default=d.checkpoint_mode,
      help="write snapshots from a forked child or a thread")
    a("--recovery", type=RecoveryMode, choices=list(RecoveryMode),
      metavar="{strict,point-in-time}", default=d.recovery,
      help="strict (default) refuses to start on damage before the log tail; point-in-time "
           "keeps the longest valid prefix and sets the rest aside")
    a("--unsafe-no-fsync", action="store_true",
      help="UNSAFE, benchmarks only: acknowledge writes without fsync")
    a("--log-level", choices=["debug", "info", "warning", "error"], default=d.log_level)
    a("--log-format", choices=["text", "json"], default=d.log_format,
      help="text lines (default) or one JSON object per line")
    return p


def parse_args(argv: list[str], environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from command-line arguments and ``environ`` (none if None).

    Exits 2 with one line on stderr for a bad argument.
    """
    ns = build_parser().parse_args(argv)
    if ns.group_max_bytes <= 0 or ns.segment_bytes < 4096:
        build_parser().error("--group-max-bytes must be > 0 and --segment-bytes >= 4096")
    env = environ or {}
    return Config(native=env.get("WALKV_NATIVE", "1") != "0",
                  native_build=env.get("WALKV_NATIVE_DIR") or None,
                  **{f.name: getattr(ns, f.name) for f in fields(Config)
                     if f.name not in _FROM_ENVIRONMENT})


_FROM_ENVIRONMENT = frozenset({"native", "native_build"})
