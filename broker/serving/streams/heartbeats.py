"""Heartbeats of a node's SSE readers: one timer for the node, not one per reader.

Every `heartbeat_s / 2` each reader that sent nothing since the previous beat is sent a
heartbeat (Skip's empty update), so an idle stream hears from the node at least every
`heartbeat_s`. The timer runs while there are readers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from broker.serving.streams.subscription import Subscription


class Heartbeats:
    __slots__ = ("_interval_s", "_readers", "_timer")

    def __init__(self, heartbeat_s: float, readers: Callable[[], Iterator[Subscription]]) -> None:
        self._interval_s = heartbeat_s / 2
        self._readers = readers
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Make sure the timer runs (a reader connected)."""
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._interval_s, self._beat)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        self._timer = None
        beaten = 0
        for reader in self._readers():
            reader.heartbeat()
            beaten += 1
        if beaten:
            self.arm()
