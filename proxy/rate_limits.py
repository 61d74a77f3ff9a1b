"""The proxy's rate limits: stream creations and writes, per client, shared through Redis.

Each client (proxy/identity.py) has one GCRA bucket per action in Redis
(broker/store/rate_limit.py), so every proxy of the service counts it together: two proxies
behind a load balancer do not double a client's allowance.

When Redis cannot be reached (membership says so, or the script call fails) the limits **fail
open onto a local bucket**: each proxy goes on counting in its own memory, with the same rule,
so a client is still limited, at most (number of proxies) times as loosely. Failing closed
would turn a Redis outage into a refusal of every stream creation, even those whose nodes are
up and serving; refusing nothing at all would leave the cluster unprotected exactly while it
is weakest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

from redis.asyncio import Redis

from broker.store.keyspace import Keyspace, KeyspaceError, RateAction
from broker.store.rate_limit import ALLOWED, RateLimit, Verdict, gcra, take
from broker.store.scripts import RedisCallError

logger = logging.getLogger("skiff.proxy")

# A local bucket per client; beyond this many, the expired ones are dropped, then the oldest.
_LOCAL_KEYS: Final = 100_000
# One warning per this many seconds while the limits run locally.
_WARN_EVERY_S: Final = 30.0


class LocalBuckets:
    """GCRA buckets in this process's memory (the fallback), bounded in size."""

    __slots__ = ("_max_keys", "_tats")

    def __init__(self, max_keys: int = _LOCAL_KEYS) -> None:
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._tats)

    def take(self, key: str, limit: RateLimit, now_ms: float) -> Verdict:
        verdict, tat = gcra(self._tats.get(key), now_ms, limit)
        if tat is not None:
            self._tats.pop(key, None)  # re-inserted last: the dict stays oldest-first
            self._tats[key] = tat
            if len(self._tats) > self._max_keys:
                self._prune(now_ms)
        return verdict

    def _prune(self, now_ms: float) -> None:
        live = {k: tat for k, tat in self._tats.items() if tat > now_ms}
        while len(live) > self._max_keys // 2:
            del live[next(iter(live))]
        self._tats = live


class RateLimiter:
    """`await check(action, client)`: the verdict on one more request of `client`."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        limits: Mapping[RateAction, RateLimit],
        *,
        redis_ok: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self._limits = dict(limits)
        self._redis_ok = redis_ok
        self._clock = clock
        self.local = LocalBuckets()
        self._warned_at = -_WARN_EVERY_S

    def limit(self, action: RateAction) -> RateLimit:
        return self._limits[action]

    async def check(self, action: RateAction, client: str | None) -> Verdict:
        limit = self._limits[action]
        if client is None or limit.off:
            return ALLOWED
        if self._redis_ok():
            try:
                return await take(self._redis, self._keyspace.rate(action, client), limit)
            except RedisCallError as err:
                self._warn(f"rate limits counted locally: {err}")
            except KeyspaceError as err:  # a client key too long for a key name
                self._warn(f"rate limit of an unusable client key counted locally: {err}")
        return self.local.take(f"{action}:{client}", limit, self._clock() * 1000.0)

    def _warn(self, message: str) -> None:
        now = self._clock()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            logger.warning(message)
