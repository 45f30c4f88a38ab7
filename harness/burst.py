"""Many PUTs started at once, each on its own new connection (the lsfr burst).

The public lsfr stages fire 10,000 requests with no concurrency limit through Go's
HTTP client, so thousands of connections arrive together. Every request here counts
as a success (200) or a failure of one named kind, so a report says *how* a server
fell over: refused (backlog or accept loop), reset, timeout, or a status.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.client import REQUEST_ERRORS, REQUEST_TIMEOUT_S, kv_path, request_once
from harness.errors import ConnectionClosedError, ProtocolError

Items = list[tuple[bytes, bytes]]
"""(key, value) pairs to PUT."""


@dataclass
class BurstResult:
    """Outcome of one burst. ``succeeded`` holds the indices of the items answered 200."""

    requests: int
    elapsed_s: float
    succeeded: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        """Requests answered 200."""
        return len(self.succeeded)

    def to_dict(self) -> dict[str, object]:
        """Counts, time and failures per kind, as printed for ``--json``."""
        return {"requests": self.requests, "ok": self.ok, "elapsed_s": self.elapsed_s,
                "failures": dict(self.failures)}

    def summary(self) -> str:
        """One line: counts, failure kinds, time."""
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.failures.items()))
        return f"{self.ok}/{self.requests} ok in {self.elapsed_s:.2f} s" + (
            f"; failures {kinds}" if kinds else ""
        )


def classify_failure(exc: BaseException) -> str:
    """Name the kind of a failed request: refused, reset, timeout, or the errno."""
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionClosedError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ProtocolError):
        return "bad response"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return type(exc).__name__


async def burst_put(
    host: str,
    port: int,
    items: Sequence[tuple[bytes, bytes]],
    *,
    timeout: float = REQUEST_TIMEOUT_S,
) -> BurstResult:
    """PUT every (key, value) at once, one new connection each; wait for all."""

    async def one(index: int, key: bytes, value: bytes) -> tuple[int, str | None]:
        try:
            response = await request_once(host, port, "PUT", kv_path(key), value, timeout=timeout)
        except REQUEST_ERRORS as exc:
            return index, classify_failure(exc)
        return index, None if response.status == 200 else f"status {response.status}"

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i, k, v) for i, (k, v) in enumerate(items)))
    result = BurstResult(len(items), time.perf_counter() - started)
    for index, failure in outcomes:
        if failure is None:
            result.succeeded.append(index)
        else:
            result.failures[failure] += 1
    return result


def burst_items(
    count: int, prefix: str = "burst", value_bytes: int = 16
) -> list[tuple[bytes, bytes]]:
    """``count`` distinct keys with distinct values of at least ``value_bytes`` bytes."""
    items = []
    for i in range(count):
        key = f"{prefix}-{i}".encode()
        value = f"{prefix}-value-{i}-".encode()
        items.append((key, value.ljust(value_bytes, b"x")))
    return items


def raise_nofile_limit() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return it.

    A burst holds one socket per request at once; the default soft limit (often
    1024) would fail it on the client side, which is not what is being measured.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit still meets the kernel's nr_open cap; 2**20 is its default.
    target = (1 << 20) if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft
