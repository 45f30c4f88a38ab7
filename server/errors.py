"""Errors the server reports at startup, each turned into one line on stderr."""

from __future__ import annotations


class StartupError(Exception):
    """Starting the server failed for a reason the operator can act on.

    ``exit_code`` is the process exit status; the message is the one line printed.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        self.exit_code = exit_code
        super().__init__(message)
