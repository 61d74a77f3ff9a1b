"""Waiting for the engine to be between ticks before reading it.

A leader computes a tick, holds it open while Redis makes it durable, and only then commits
(graph.Engine.begin): meanwhile the engine holds changes that may still be rolled back, under the
old version. A read that must see only committed state — a new reader's init, the admin
checksums — waits here. (A leader's routes that create instances are gated by its write lock
instead: broker/leader/tick_gate.py.)
"""

from __future__ import annotations

import asyncio
from typing import Final

from broker.errors import UnavailableError
from graph import Engine

#: Ticks stay open for one Redis round trip; a tick open longer than this is an outage.
SETTLE_TIMEOUT_S: Final = 2.0


async def settled(engine: Engine, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Return once no tick is open; UnavailableError if one stays open for `timeout_s`."""
    if engine.tick is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # Polled: only a read racing a leader's append gets here, for about a millisecond.
    while engine.tick is not None:
        if loop.time() > deadline:
            raise UnavailableError("a tick is in progress, retry")
        await asyncio.sleep(0.001)
