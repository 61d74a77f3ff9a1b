"""Wall-clock time in milliseconds: what skiff stamps on heartbeats, deltas and snapshots."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch (wall clock: comparable across nodes, not monotonic)."""
    return time.time_ns() // 1_000_000
