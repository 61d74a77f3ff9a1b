"""Waiting for state a test cannot await (another task, another process, Redis)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    predicate: Callable[[], Awaitable[Any] | Any], *, within: float = 5.0, step: float = 0.02
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {within} s")
        await asyncio.sleep(step)
