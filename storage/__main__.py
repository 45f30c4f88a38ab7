"""``python -m storage``: the offline tool for a stopped server's working directory."""

import sys

from storage.offline.cli import main

if __name__ == "__main__":
    sys.exit(main())
