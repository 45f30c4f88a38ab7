"""``python -m server``: start walkv (``./run.sh`` does this after setting up .venv).

The steps, in this order: read the configuration, choose the build of the request
path (before any of its modules is imported), then run the server.
"""

from __future__ import annotations

import os
import sys
import traceback

from server import native
from server.config import parse_args
from server.errors import StartupError


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: errors become one line on stderr and a non-zero exit."""
    config = parse_args(sys.argv[1:] if argv is None else argv, os.environ)
    request_path = native.select(config.native, config.native_build)
    # Imported only now, so that the request path loads from the build chosen above.
    from server import app  # noqa: PLC0415

    try:
        return app.run(config, request_path)
    except StartupError as exc:
        sys.stderr.write(f"walkv: error: {exc}\n")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line must say what happened
        # A bug, not an operator error: keep the traceback for the report, and still
        # end with one line that names the failure (never a bare traceback).
        traceback.print_exc()
        sys.stderr.write(f"walkv: error: stopped by an unexpected {type(exc).__name__}: "
                         f"{exc} (this is a bug; the traceback is above)\n")
        return 70  # EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
