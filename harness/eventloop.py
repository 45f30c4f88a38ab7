"""Running the harness's coroutines: on uvloop when it is installed, else asyncio's loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_new_uvloop: Callable[[], asyncio.AbstractEventLoop] | None
try:
    import uvloop

    _new_uvloop = uvloop.new_event_loop
except ImportError:  # the default loop works too, only slower
    _new_uvloop = None

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop (uvloop when installed)."""
    with asyncio.Runner(loop_factory=_new_uvloop) as runner:
        return runner.run(main)
