# Sourced by run.sh and test.sh: make sure .venv exists and holds the project with
# the requested extras, and that the compiled request path is up to date. The install
# runs once; later calls compare a stamp (hash of pyproject.toml plus extras) and a
# few file dates, and return in a few milliseconds.
#   usage: walkv_bootstrap ROOT EXTRAS      (EXTRAS: "" or "test")

walkv_bootstrap() {
    walkv_install "$@" || return 1
    walkv_native "$1"
}

# The environment: created and installed once, then a stamp comparison.
walkv_install() {
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
    # "native": mypyc, which compiles the request path (walkv_native below).
    local spec="$root[native${extras:+,$extras}]"
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
    rm -f "$venv/walkv-native.checked"  # a new environment: build against it
    exec 9>&-
    return 0
}

# Build the compiled request path (tools/native.py) when a file under server/ is newer
# than the last check. tools/native.py compares contents and rebuilds only what it
# compiles; when it cannot build (no C compiler) walkv runs interpreted, and it is not
# tried again until server/ changes. WALKV_NATIVE=0 skips all of it.
walkv_native() {
    local root=$1
    local checked="$root/.venv/walkv-native.checked"
    [ "${WALKV_NATIVE:-1}" = 0 ] && return 0
    if [ -e "$checked" ] && [ -z "$(find "$root/server" -name '*.py' -newer "$checked" -print -quit)" ]; then
        return 0
    fi
    exec 9>"$root/.venv.lock"
    if command -v flock >/dev/null 2>&1; then flock 9; fi
    # Stamp first: a file edited while this runs is newer, and checked next time.
    touch "$checked"
    "$root/.venv/bin/python" "$root/tools/native.py" || true
    exec 9>&-
}
