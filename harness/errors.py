"""Errors raised by the harness.

Each class says when it is raised and carries the fields a test needs to report the
failure (exit code, log path, stderr tail) without parsing the message.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base class for every error the harness raises on purpose."""


class ServerStartError(HarnessError):
    """The server did not become ready: it exited, or the deadline passed.

    ``returncode`` is None when the process was still running at the deadline.
    ``stderr`` holds the server's stderr so far, to be shown in the test report.
    """

    def __init__(self, reason: str, returncode: int | None, log_path: Path, stderr: str) -> None:
        self.reason = reason
        self.returncode = returncode
        self.log_path = log_path
        self.stderr = stderr
        tail = "\n".join(stderr.splitlines()[-20:])
        super().__init__(f"{reason} (exit code {returncode}, log {log_path})\n{tail}")


class ProtocolError(HarnessError):
    """The server sent bytes that are not a valid HTTP/1.1 response."""


class ConnectionClosedError(HarnessError):
    """The connection closed before a complete response to a request arrived.

    The request may or may not have reached the server; callers treat the outcome of
    the operation as unknown.
    """


class BenchError(HarnessError):
    """A benchmark step could not run: a load client failed or printed no result.

    ``log_path`` names the file holding that step's output.
    """

    def __init__(self, reason: str, log_path: Path | None = None) -> None:
        self.reason = reason
        self.log_path = log_path
        super().__init__(reason if log_path is None else f"{reason} (see {log_path})")
