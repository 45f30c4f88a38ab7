"""Facts about the machine a benchmark ran on, and the disk's own fdatasync latency.

The fdatasync probe does what walkv's WAL writer does for one small commit group:
``pwrite`` a 128-byte record after the previous one in a preallocated file, then
``fdatasync``. Its p50 is the floor under a durable single-connection PUT on this
disk, so the report prints the two side by side.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from harness.bench.model import MachineFacts

PROBE_FILE_BYTES = 4 << 20
"""Preallocated like one WAL step (storage/FORMAT.md), so no write extends the file."""
PROBE_RECORD = b"r" * 128


def measure_fdatasync(directory: Path, samples: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``pwrite`` + ``fdatasync`` on a file in ``directory``."""
    path = directory / ".fdatasync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, PROBE_FILE_BYTES)
        os.fsync(fd)
        times = _probe(fd, max(samples, 10))
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    times.sort()
    return _quantile(times, 0.50) * 1e3, _quantile(times, 0.99) * 1e3


def _probe(fd: int, samples: int) -> list[float]:
    slots = PROBE_FILE_BYTES // len(PROBE_RECORD)
    times = []
    for i in range(samples + 5):
        started = time.perf_counter()
        os.pwrite(fd, PROBE_RECORD, (i % slots) * len(PROBE_RECORD))
        os.fdatasync(fd)
        if i >= 5:  # the first calls also settle the file's metadata
            times.append(time.perf_counter() - started)
    return times


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def filesystem_of(path: Path) -> str:
    """``fstype (device)`` of the mount holding ``path``: the longest matching prefix."""
    real = os.path.realpath(path)
    best: tuple[int, str] = (-1, "unknown")
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > best[0]:
            best = (len(mount), f"{part.fstype} ({part.device} on {mount})")
    return best[1]


def package_version(name: str) -> str:
    """Installed version of a distribution, or ``not installed``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def wrk_version() -> str | None:
    """``wrk``'s version line, or None when it is not on PATH."""
    path = shutil.which("wrk")
    if path is None:
        return None
    done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].strip() if first else path


def machine_facts(directory: Path, load_generator: str, fdatasync_samples: int) -> MachineFacts:
    """Collect the report header; measures fdatasync in ``directory``."""
    p50, p99 = measure_fdatasync(directory, fdatasync_samples)
    return MachineFacts(
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 1,
        kernel=f"{platform.system()} {platform.release()}",
        filesystem=filesystem_of(directory),
        working_dir=str(directory),
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        uvloop=package_version("uvloop"),
        httptools=package_version("httptools"),
        wrk=wrk_version(),
        load_generator=load_generator,
        fdatasync_p50_ms=p50,
        fdatasync_p99_ms=p99,
    )
