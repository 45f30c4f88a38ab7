"""The compiled request path: which modules mypyc compiles, and choosing a build.

The code every request runs (``NATIVE_MODULES``) is compiled by mypyc at set-up:
``tools/native.py``, run by run.sh and test.sh, builds it into ``.venv/walkv-native/``
with a stamp of the sources it was built from. The same modules run interpreted when
there is no build (no C compiler), when a source changed since the build (until the
next run.sh or test.sh rebuilds it), and when told to (``WALKV_NATIVE=0``, for
profilers that only see Python frames).

Choosing is an explicit step of the entry point (``select``), made before any of those
modules is imported: it puts the build's directories first on the packages' search
paths, so the imports that follow load the compiled modules.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from typing import Final

NATIVE_MODULES: Final = (
    "server.commands",
    "server.pipeline",
    "server.http.codec",
    "server.http.replies",
    "server.http.router",
    "server.http.protocol",
    "server.resp.codec",
    "server.resp.replies",
    "server.resp.protocol",
)
"""The modules that are compiled: the per-request code."""
NATIVE_GROUP: Final = "walkv_native"
"""mypyc's shared library for the group, a top-level module in the build directory."""
CHECKOUT: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory holding ``server/``."""
COMPILED: Final = "compiled (mypyc)"


def default_build_dir(checkout: str = CHECKOUT) -> str:
    """Where set-up puts the build of the checkout at ``checkout``."""
    return os.path.join(checkout, ".venv", "walkv-native")


def source_path(module: str, checkout: str = CHECKOUT) -> str:
    """The ``.py`` file of ``module`` (a dotted name) in ``checkout``."""
    return os.path.join(checkout, *module.split(".")) + ".py"


def sources_stamp(checkout: str = CHECKOUT) -> str:
    """What a build must have been made from: the compiled sources and this Python."""
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    for module in NATIVE_MODULES:
        with open(source_path(module, checkout), "rb") as f:
            digest.update(b"\0" + module.encode() + b"\0" + f.read())
    return digest.hexdigest()


def unusable(build: str, checkout: str = CHECKOUT) -> str | None:
    """Why the build at ``build`` must not be used for ``checkout``, or None if it may."""
    try:
        with open(os.path.join(build, "STAMP"), encoding="ascii") as f:
            stamp = f.read().strip()
    except OSError:
        return "not built (no C compiler at set-up?)"
    if stamp != sources_stamp(checkout):
        return "the sources changed since the build (run.sh or test.sh rebuilds it)"
    return None


_selected: str | None = None


def select(enabled: bool, build: str | None = None) -> str:
    """Run the request path from the build when it is current; say which runs.

    Returns ``COMPILED`` or ``"interpreted: <why>"``. The first call must come before
    any of ``NATIVE_MODULES`` is imported (they would stay as first loaded); the
    choice is made once per process, and later calls return it.
    """
    global _selected
    if _selected is None:
        _selected = _select(enabled, build)
    return _selected


def _select(enabled: bool, build: str | None) -> str:
    loaded = [m for m in NATIVE_MODULES if m in sys.modules]
    if loaded:
        raise RuntimeError(f"native.select() must run before {loaded[0]} is imported")
    if not enabled:
        return "interpreted: WALKV_NATIVE=0"
    build = build or default_build_dir()
    why_not = unusable(build)
    if why_not is not None:
        return f"interpreted: {why_not}"
    # Submodules are looked up along their package's __path__: the build's first.
    for package in sorted({m.rpartition(".")[0] for m in NATIVE_MODULES}):
        path: list[str] = importlib.import_module(package).__path__  # type: ignore[assignment]
        path.insert(0, os.path.join(build, *package.split(".")))
    sys.path.append(build)  # the group's shared library is a top-level module
    return COMPILED
