"""walkv's network front end: HTTP/1.1 on asyncio + uvloop, speaking to ``storage``.

The request path (``NATIVE_MODULES``) runs compiled by mypyc when a build of exactly
these sources exists. ``tools/native.py``, run by run.sh and test.sh at set-up,
builds it into ``.venv/walkv-native/`` (or ``$WALKV_NATIVE_DIR``) with a stamp of
the sources it was built from. The same code runs interpreted when there is no
build (no C compiler), when a source file changed since the build (until the next
run.sh or test.sh rebuilds it), and when ``WALKV_NATIVE=0`` is set (for profilers
that only see Python frames). ``native`` says which, and the server logs it at start.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping

NATIVE_MODULES = ("commands", "http", "router", "connection")
"""Modules of this package that are compiled (the per-request code)."""
NATIVE_GROUP = "walkv_native"
"""mypyc's shared library for the group, a top-level module in the build directory."""
_HERE = os.path.dirname(os.path.abspath(__file__))


def native_dir(root: str = os.path.dirname(_HERE)) -> str:
    """Where the build of the checkout at ``root`` is: ``$WALKV_NATIVE_DIR`` if set."""
    return os.environ.get("WALKV_NATIVE_DIR") or os.path.join(root, ".venv", "walkv-native")


def sources_stamp(package_dir: str = _HERE) -> str:
    """What a build must have been made from: the compiled sources and this Python."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for name in NATIVE_MODULES:
        with open(os.path.join(package_dir, name + ".py"), "rb") as f:
            digest.update(b"\0" + name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def choose_native(build: str, package_dir: str = _HERE,
                  env: Mapping[str, str] = os.environ) -> str | None:
    """Why the build at ``build`` must not be used, or None when it may be."""
    if env.get("WALKV_NATIVE", "1") == "0":
        return "WALKV_NATIVE=0"
    try:
        with open(os.path.join(build, "STAMP"), encoding="ascii") as f:
            stamp = f.read().strip()
    except OSError:
        return "not built (no C compiler at set-up?)"
    if stamp != sources_stamp(package_dir):
        return "the sources changed since the build (run.sh or test.sh rebuilds it)"
    return None


def _select() -> str:
    build = native_dir()
    why_not = choose_native(build)
    if why_not is not None:
        return f"interpreted: {why_not}"
    # Submodules are looked up along __path__: the build's extension modules first.
    __path__.insert(0, os.path.join(build, "server"))
    sys.path.append(build)  # the group's shared library is a top-level module
    return "compiled (mypyc)"


native = _select()
"""How the request path runs: "compiled (mypyc)", or "interpreted: <why>"."""
