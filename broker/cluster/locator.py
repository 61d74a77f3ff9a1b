"""LeaderLocator: where the leader is, read from Redis: the lease holder, then its heartbeat.

The lease names the holder (`<node id>/<pid>-<random>`, store/codec.py); the holder's node
record (`node:<node id>`) gives the URL it advertises. A follower forwarding writes and a standby
naming the leader in its 503s both ask here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from broker.store.codec import CodecError, LeaseRecord
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord

#: How long a located leader is trusted before the lease is read again.
LEADER_CACHE_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class LeaderAddress:
    node_id: str
    term: int
    url: str | None


class LeaderLocator:
    """Finds the current leader's URL: the lease holder, then its heartbeat record."""

    def __init__(self, redis: Redis, keyspace: Keyspace, *, cache_s: float = LEADER_CACHE_S):
        self._redis = redis
        self._keys = keyspace
        self._cache_s = cache_s
        self._cached: tuple[float, LeaderAddress] | None = None

    async def leader(self) -> LeaderAddress | None:
        """The leader, or None when no lease is held. Raises redis errors."""
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        raw = await self._redis.get(self._keys.lease)
        if raw is None:
            return None
        lease = LeaseRecord.decode(raw)
        record_raw: Any = await self._redis.get(self._keys.node(lease.node_id))
        url = None
        if record_raw is not None:
            try:
                url = NodeRecord.decode(record_raw).url
            except CodecError:
                url = None
        address = LeaderAddress(lease.node_id, lease.token, url)
        if url is not None:
            self._cached = (time.monotonic(), address)
        return address

    def forget(self) -> None:
        self._cached = None
