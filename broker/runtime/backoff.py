"""Backoff: the capped exponential delays of every retry loop (campaign, renewal, replication,
external subscriptions), and the count of consecutive failures a loop keeps between attempts.

No jitter: each loop retries one peer (Redis, one adapter), and the nodes of a cluster are
already desynchronised by their own start times and lease schedules."""

from __future__ import annotations


class Backoff:
    """Delays `first`, 2·`first`, 4·`first`, ... up to `cap`; `reset()` after a success."""

    __slots__ = ("_cap", "_failures", "_first")

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        self._first = first
        self._cap = cap
        self._failures = 0

    def next(self) -> float:
        self._failures += 1
        # The exponent is bounded: past 2**64 every delay is the cap anyway.
        return float(min(self._cap, self._first * 2 ** min(self._failures - 1, 64)))

    def reset(self) -> None:
        self._failures = 0
