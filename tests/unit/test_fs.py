"""The real filesystem seam: a durable write is one ``pwritev2(RWF_DSYNC)`` on Linux,
and exactly ``pwrite`` + ``fdatasync`` where the kernel cannot do that."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from storage import Op, Outcome
from storage.fs import OsFileSystem, _OsFile
from tests.unit.storage_util import opened

needs_dsync = pytest.mark.skipif(not hasattr(os, "RWF_DSYNC"), reason="no RWF_DSYNC here")


class Calls:
    """Records ``os.pwritev`` flags and ``os.fdatasync`` calls, then does them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pwritev_error: int = 0) -> None:
        self.pwritev_flags: list[int] = []
        self.fdatasyncs = 0
        real_pwritev, real_fdatasync = os.pwritev, os.fdatasync

        def pwritev(fd: int, buffers: Any, offset: int, flags: int = 0) -> int:
            self.pwritev_flags.append(flags)
            if pwritev_error:
                raise OSError(pwritev_error, os.strerror(pwritev_error))
            return real_pwritev(fd, buffers, offset, flags)

        def fdatasync(fd: int) -> None:
            self.fdatasyncs += 1
            real_fdatasync(fd)

        monkeypatch.setattr(os, "pwritev", pwritev)
        monkeypatch.setattr(os, "fdatasync", fdatasync)


def _file(tmp_path: Path, data: bytes = b"0123456789") -> tuple[Any, Path]:
    path = tmp_path / "f"
    path.write_bytes(data)
    return OsFileSystem().open_write(str(path)), path


@needs_dsync
def test_durable_write_is_one_dsync_pwritev(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_OsFile, "dsync_writes", True)
    handle, path = _file(tmp_path)
    calls = Calls(monkeypatch)
    handle.write_durable(4, b"abc")
    handle.close()
    assert calls.pwritev_flags == [os.RWF_DSYNC]
    assert calls.fdatasyncs == 0
    assert path.read_bytes() == b"0123abc789"


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.ENOSYS])
def test_durable_write_without_kernel_support_is_write_then_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    monkeypatch.setattr(_OsFile, "dsync_writes", hasattr(os, "RWF_DSYNC"))
    handle, path = _file(tmp_path)
    calls = Calls(monkeypatch, pwritev_error=code)
    handle.write_durable(8, b"xyz")
    handle.write_durable(0, b"A")  # the fallback is remembered: no second attempt
    handle.close()
    assert len(calls.pwritev_flags) <= 1
    assert calls.fdatasyncs == 2
    assert not _OsFile.dsync_writes
    assert path.read_bytes() == b"A1234567xyz"


@needs_dsync
def test_durable_write_error_is_raised_not_retried(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_OsFile, "dsync_writes", True)
    handle, _ = _file(tmp_path)
    calls = Calls(monkeypatch, pwritev_error=errno.EIO)
    with pytest.raises(OSError) as info:
        handle.write_durable(0, b"lost")
    handle.close()
    assert info.value.errno == errno.EIO
    assert (calls.pwritev_flags, calls.fdatasyncs) == ([os.RWF_DSYNC], 0)


@needs_dsync
def test_a_commit_group_is_one_dsync_write(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_OsFile, "dsync_writes", True)
    root = str(tmp_path / "db")
    with opened(root) as engine:
        calls = Calls(monkeypatch)
        assert engine.write(Op.PUT, b"k", b"v") is Outcome.OK
        assert (calls.pwritev_flags, calls.fdatasyncs) == ([os.RWF_DSYNC], 0)
    with opened(root) as again:
        assert again.get(b"k") == b"v"
