"""ReaderDeadlines: the moment each reader's identity token stops being valid, as one timer per
reader that the hub cancels when the reader goes first (only with identity tokens on)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from broker.serving.streams.subscription import Subscription


class ReaderDeadlines:
    def __init__(self, on_expired: Callable[[Subscription], None]) -> None:
        self._on_expired = on_expired
        self._timers: dict[Subscription, asyncio.TimerHandle] = {}

    def arm(self, reader: Subscription, until: float) -> None:
        """End `reader` at `until` (seconds since the epoch; at once if already past)."""
        delay = max(0.0, until - time.time())
        self._timers[reader] = asyncio.get_running_loop().call_later(delay, self._expire, reader)

    def cancel(self, reader: Subscription) -> None:
        # Checked first: with auth off there is never a timer, and this runs on every detach.
        if self._timers:
            timer = self._timers.pop(reader, None)
            if timer is not None:
                timer.cancel()

    def _expire(self, reader: Subscription) -> None:
        del self._timers[reader]
        self._on_expired(reader)
