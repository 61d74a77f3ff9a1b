"""The chaos runs' Redis primary failover (`redis_failover`, topology `sentinel`): a primary
with one replica and three Sentinels (tests/support/redis_topologies.py), every skiff process
on `redis+sentinel://`. The fault kills the primary with SIGKILL, waits for the Sentinels to
promote the replica, and restarts the old primary after the hold, which rejoins as the new
primary's replica (so `--durability replica` can be met again)."""

from __future__ import annotations

import asyncio
from typing import Final

from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.redis_topologies import SentinelSet

#: The fault kinds of a Sentinel scenario: the network faults and AOF restarts of a single
#: Redis do not apply (the processes reach the Sentinels and servers directly).
SENTINEL_FAULTS: Final = ("kill9", "sigstop", "redis_failover", "flushall", "slow_reader")
#: Leaders in a Sentinel scenario acknowledge a write once the replica holds it.
SENTINEL_LEADER_ARGS: Final = ("--durability", "replica", "--durability-timeout", "500")


async def redis_failover(sentinel: SentinelSet, hold: float) -> EmbeddedRedis:
    """Kill -9 the primary, wait for the promotion, restart the old one; the new primary."""
    old = await sentinel.kill_primary()
    new = await sentinel.wait_failover(old)
    await asyncio.sleep(hold)
    await old.start()
    return new
