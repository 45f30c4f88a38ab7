"""The layering rules of the architecture, checked on the import statements themselves.

Imports point down: harness -> server -> storage. ``storage`` is the engine (no
asyncio, no sockets, nothing above it); ``server`` reaches it only through
``storage/__init__.py``; the protocol-neutral parts of ``server`` know no protocol
package, and protocol packages (``server/http``, and any later one) never import each
other; ``harness`` uses the engine's public API and ``storage.testing`` only. Nothing
imports anything in a circle. Every import counts, also those inside functions and
``TYPE_CHECKING`` blocks: a cycle for the type checker is a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "storage", "harness")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    return {module_name(p): p for package in PACKAGES
            for p in sorted((REPO / package).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports(name: str) -> frozenset[str]:
    """The project modules ``name`` imports (``from p import m`` counts m if a module)."""
    path = modules()[name]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, path.name == "__init__.py")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return frozenset(m for m in found if m in modules() and m != name)


def external_imports(name: str) -> set[str]:
    """Top-level names of everything ``name`` imports, project or not."""
    path = modules()[name]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def edges() -> Iterator[tuple[str, str]]:
    for name in modules():
        for target in imports(name):
            yield name, target


def protocol_packages() -> list[str]:
    """``server.http`` and every other subpackage of ``server``: one per protocol."""
    return sorted(m for m, p in modules().items()
                  if p.name == "__init__.py" and m.count(".") == 1 and m.startswith("server."))


def test_the_packages_are_found() -> None:
    assert {"server.app", "server.pipeline", "storage.engine", "harness.powerloss"} <= set(
        modules())
    assert "server.http" in protocol_packages()


def test_nothing_imports_in_a_circle() -> None:
    # A module importing its own package's __init__ (which may re-export it) is not
    # a cycle of the design: Python imports every parent package first anyway.
    graph = {name: {t for t in imports(name)
                    if not (in_package(name, t) and modules()[t].name == "__init__.py")}
             for name in modules()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_storage_imports_nothing_above_it_and_no_event_loop() -> None:
    for name in (m for m in modules() if in_package(m, "storage")):
        assert not {t for t in imports(name) if not in_package(t, "storage")}, name
        assert not external_imports(name) & {"asyncio", "uvloop", "socket", "httptools"}, name


def test_server_uses_storage_through_its_package_only() -> None:
    for source, target in edges():
        if in_package(source, "server") and in_package(target, "storage"):
            assert target == "storage", f"{source} imports {target}"


def test_harness_uses_the_public_api_and_storage_testing_only() -> None:
    for source, target in edges():
        if in_package(source, "harness") and in_package(target, "storage"):
            assert target == "storage" or in_package(target, "storage.testing"), (
                f"{source} imports {target}")


def test_protocols_never_import_each_other() -> None:
    protocols = protocol_packages()
    for source, target in edges():
        for a in protocols:
            for b in protocols:
                if a != b and in_package(source, a):
                    assert not in_package(target, b), f"{source} imports {target}"


def test_the_shared_plumbing_knows_no_protocol() -> None:
    shared = [m for m in modules() if in_package(m, "server") and m.count(".") == 1
              and m not in protocol_packages() and m not in ("server.app", "server.__main__")]
    assert "server.pipeline" in shared and "server.introspection" in shared
    for name in shared:
        for target in imports(name):
            assert not any(in_package(target, p) for p in protocol_packages()), (
                f"{name} imports {target}")


def test_nothing_in_the_server_imports_its_lifecycle() -> None:
    for source, target in edges():
        if target == "server.app":
            assert source == "server.__main__", f"{source} imports server.app"


def test_the_engine_does_not_depend_on_its_tools() -> None:
    for source, target in edges():
        for tools in ("storage.testing", "storage.offline"):
            if in_package(target, tools) and in_package(source, "storage"):
                assert in_package(source, tools) or source == "storage.__main__", (
                    f"{source} imports {target}")


@pytest.mark.parametrize("entry", ["server.__main__", "server.native", "server.config"])
def test_the_build_is_chosen_before_the_request_path_loads(entry: str) -> None:
    from server import native  # noqa: PLC0415 - the list of compiled modules

    def top_level(name: str) -> set[str]:
        tree = ast.parse(modules()[name].read_text())
        found: set[str] = set()
        for node in tree.body:  # module level only: not inside functions
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        return {m for m in found if m in modules()}

    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(top_level(name))
    assert not seen & set(native.NATIVE_MODULES), (
        f"importing {entry} loads the request path before native.select")
