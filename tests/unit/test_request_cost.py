"""``tools/request_cost.py`` measures the real request path: check it serves what it feeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest


def _tool() -> ModuleType:
    path = Path(__file__).parents[2] / "tools" / "request_cost.py"
    spec = importlib.util.spec_from_file_location("request_cost", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("mode", "answered"), [
    ("get-walkv", 50), ("get-ceiling", 50),
    # walkv answers a PUT when its group commits; groups of 8 are completed at once.
    ("put-walkv", 48), ("put-ceiling", 50),
])
def test_each_measured_request_is_answered(mode: str, answered: int) -> None:
    tool = _tool()
    assert tool.run_inprocess(mode, 50) == answered
    assert tool.run_inprocess(mode, 50, serve=False) == 0
