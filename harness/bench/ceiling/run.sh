#!/usr/bin/env bash
# Start the ceiling fixture (harness/bench/ceiling/server.py) like any target:
#   harness/bench/ceiling/run.sh --port 8080 --working-dir ./data
# A bare uvloop + httptools dict server with no durability: the benchmark's yardstick.
# It uses walkv's .venv only for uvloop and httptools (bootstrapped like ./run.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck source=../../../tools/bootstrap.sh
. "$root/tools/bootstrap.sh"
walkv_bootstrap "$root" "" || exit 1
export PYTHONDONTWRITEBYTECODE=1
exec "$root/.venv/bin/python" -m harness.bench.ceiling.server "$@"
