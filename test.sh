#!/usr/bin/env bash
# Lint, type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
# shellcheck source=tools/bootstrap.sh
. "$root/tools/bootstrap.sh"
walkv_bootstrap "$root" "test" || exit 1
py="$root/.venv/bin/python"

echo "== ruff"
"$py" -m ruff check server storage harness tests tools
echo "== mypy (strict)"
"$py" -m mypy
echo "== pytest"
"$py" -m pytest -q "$@"
