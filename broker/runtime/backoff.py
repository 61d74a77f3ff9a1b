"""Backoff: the capped exponential delays of every retry loop (campaign, renewal, replication).

The delays are redis-py's `ExponentialBackoff`; this adds the count of consecutive failures a
loop keeps between attempts."""

from __future__ import annotations

from redis.backoff import ExponentialBackoff


class Backoff:
    """Delays `first`, 2·`first`, 4·`first`, ... up to `cap`; `reset()` after a success."""

    __slots__ = ("_delays", "_failures")

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        # ExponentialBackoff.compute(n) = min(cap, base * 2**n): base = first / 2 starts at n = 1.
        self._delays = ExponentialBackoff(cap=cap, base=first / 2)
        self._failures = 0

    def next(self) -> float:
        self._failures += 1
        return float(self._delays.compute(self._failures))

    def reset(self) -> None:
        self._failures = 0
