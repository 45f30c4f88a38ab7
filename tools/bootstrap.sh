# Sourced by run.sh and test.sh: make sure .venv exists and holds the project with
# the requested extras. The install runs once; later calls compare a stamp (hash of
# pyproject.toml plus extras) and return in a few milliseconds.
#   usage: walkv_bootstrap ROOT EXTRAS      (EXTRAS: "" or "test")

walkv_bootstrap() {
    local root=$1 extras=$2
    local venv="$root/.venv"
    local want
    want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1) extras=${extras:-none}"
    if [ -f "$venv/.walkv-stamp" ] && grep -qxF "$want" "$venv/.walkv-stamp" 2>/dev/null; then
        return 0
    fi
    local py=${WALKV_PYTHON:-python3}
    if ! command -v "$py" >/dev/null 2>&1; then
        echo "walkv: error: $py not found; walkv needs Python 3.11 or newer" >&2
        return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "walkv: error: $("$py" --version 2>&1) is too old; walkv needs Python 3.11 or newer" >&2
        return 1
    fi
    # Serialise concurrent first starts (two servers, or a server and the tests).
    exec 9>"$root/.venv.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    if [ -f "$venv/.walkv-stamp" ] && grep -qxF "$want" "$venv/.walkv-stamp" 2>/dev/null; then
        exec 9>&-
        return 0
    fi
    echo "walkv: setting up $venv (first run)..." >&2
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" >&2 || { echo "walkv: error: could not create $venv" >&2; return 1; }
    fi
    local spec="$root"
    [ -n "$extras" ] && spec="$root[$extras]"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -e "$spec" >&2; then
        echo "walkv: error: installing dependencies into $venv failed (see pip output above)" >&2
        return 1
    fi
    # Compile once here so that starts are fast and the server never writes bytecode.
    "$venv/bin/python" -m compileall -q "$root/server" "$root/storage" "$root/harness" >/dev/null 2>&1 || true
    # A test install also satisfies a plain run; record both stamps.
    {
        echo "$want"
        [ -n "$extras" ] && echo "${want% extras=*} extras=none"
    } > "$venv/.walkv-stamp"
    exec 9>&-
    return 0
}
