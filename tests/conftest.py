"""The suite runs the request path the way ``python -m server`` does: compiled when a
current build exists (``./test.sh`` makes one), else interpreted; the header says which.

The choice has to be made before any test module imports the request path, which is
why it is made here, when pytest loads this file first.
"""

from __future__ import annotations

import os

from server import native
from server.config import parse_args

_config = parse_args([], os.environ)
REQUEST_PATH = native.select(_config.native, _config.native_build)


def pytest_report_header() -> str:
    """Which request path the in-process tests run."""
    return f"walkv request path: {REQUEST_PATH}"
