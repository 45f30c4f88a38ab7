"""``python -m server``: start walkv (``./run.sh`` does this after setting up .venv)."""

import sys

from server.app import main

if __name__ == "__main__":
    sys.exit(main())
