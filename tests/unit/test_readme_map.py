"""The README's module map ("How it works") names every module there is, and only those."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAPPED_TREES = ("server", "storage", "harness", "tools")


def readme_map() -> dict[str, set[str]]:
    """Directory (as written, ending in /) -> the file names listed under it."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("\n## How it works\n"):]
    block = section[section.index("```\n") + 4:]
    block = block[: block.index("```\n")]
    listed: dict[str, set[str]] = {}
    directory = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            directory = line.split()[0]
            listed[directory] = set()
            continue
        names = re.split(r"\s{2,}", line.strip())[0]
        if "." not in names.split(",")[0]:
            continue  # a continued description
        listed[directory].update(n.strip() for n in names.split(","))
    return listed


def the_tree() -> dict[str, set[str]]:
    """Directory -> its Python modules (``__init__.py`` aside), for every package."""
    tree: dict[str, set[str]] = {}
    for top in MAPPED_TREES:
        for path in sorted((REPO / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            directory = path.parent.relative_to(REPO).as_posix() + "/"
            tree.setdefault(directory, set())
            if path.name != "__init__.py":
                tree[directory].add(path.name)
    return tree


def test_the_map_lists_every_directory_and_module() -> None:
    listed = readme_map()
    tree = the_tree()
    assert set(listed) == set(tree), "directories in the map vs on disk"
    for directory, modules in tree.items():
        assert listed[directory] == modules, directory


def test_the_map_is_found() -> None:
    listed = readme_map()
    assert "pipeline.py" in listed["server/"]
    assert "protocol.py" in listed["server/http/"]
