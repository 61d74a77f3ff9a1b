"""The leader lease: one key with a PX expiry naming the holder and its fencing token.

Candidates call `acquire()`; the winner gets a token from an INCR counter, so every grant carries
a token greater than any earlier grant's (while Redis keeps its data; after a FLUSHALL the epoch
changes too, see fenced.py). The holder keeps the lease with `renew()` well within its TTL.

A holder must not trust its own clock alone: a process paused past its TTL still believes it
leads. That is why every write goes through the fenced scripts, which compare the caller's exact
lease record with the live one; `renew()` returning False is the holder's cue to step down.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.errors import BrokerError
from broker.store import scripts
from broker.store.codec import LeaseRecord
from broker.store.keyspace import Keyspace


class LeaseError(BrokerError, ValueError):
    """A lease cannot be set up this way (empty holder, non-positive TTL)."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a lease, as seen by a candidate that lost the race."""

    record: LeaseRecord
    ttl_ms: int


class LeaderLease:
    """The lease of one service, for one candidate (`holder`)."""

    def __init__(self, redis: Redis, keyspace: Keyspace, holder: str, ttl_ms: int) -> None:
        if ttl_ms < 1:
            raise LeaseError(f"lease ttl must be >= 1 ms, got {ttl_ms}")
        if not holder:
            raise LeaseError("lease holder must not be empty")
        self._redis = redis
        self._keys = keyspace
        self.holder = holder
        self.ttl_ms = ttl_ms

    async def acquire(self) -> LeaseRecord | LeaseHolder:
        """Take the lease if it is free: our new record, else who holds it and for how long."""
        keys = [self._keys.lease, self._keys.fence]
        reply = await scripts.ACQUIRE(self._redis, keys, [self.holder, self.ttl_ms])
        if int(reply[0]) == 1:
            return LeaseRecord.decode(reply[1])
        return LeaseHolder(LeaseRecord.decode(reply[1]), int(reply[2]))

    async def renew(self, record: LeaseRecord) -> bool:
        """Extend our lease to a full TTL from now; False when it is no longer ours."""
        reply = await scripts.RENEW(self._redis, [self._keys.lease], [record.encode(), self.ttl_ms])
        return int(reply) == 1

    async def release(self, record: LeaseRecord) -> bool:
        """Give the lease up at once (a clean shutdown): a standby need not wait for the TTL."""
        reply = await scripts.RELEASE(self._redis, [self._keys.lease], [record.encode()])
        return int(reply) == 1

    async def current(self) -> LeaseHolder | None:
        """The live lease, if any (for inspection; decisions go through the scripts)."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._keys.lease)
                pipe.pttl(self._keys.lease)
                value, ttl = await pipe.execute()
        except redis_errors.RedisError as err:
            raise scripts.RedisCallError.wrap("reading the lease", err) from err
        if value is None:
            return None
        return LeaseHolder(LeaseRecord.decode(value), int(ttl))
