#!/usr/bin/env bash
# Start the walkv server:  ./run.sh --port 8080 --working-dir ./data   (see --help)
# First use creates .venv and installs walkv into it; later starts skip that.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tools/bootstrap.sh
. "$root/tools/bootstrap.sh"
walkv_bootstrap "$root" "" || exit 1
# The server writes nothing outside its working directory (bytecode is compiled at setup).
export PYTHONDONTWRITEBYTECODE=1
exec "$root/.venv/bin/python" -m server "$@"
