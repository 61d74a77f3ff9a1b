"""Which Redis server is the primary a process writes to, said in its log and on /metrics.

With Sentinel the primary is whatever the Sentinels name now; on a Cluster it is the primary of
the service's slot. `watch_primary` asks every `interval_s` (the answer comes from the client's
own view: Sentinel's reply, the Cluster client's slot map, which both follow a failover), logs
each change and closes the connections still open to the old primary; `RedisPrimaryGauge`
(primary_gauge.py, free of redis: a node's metrics import it) exports it as
`skiff_redis_primary{address} 1`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from broker.store.connection import honour_cancellation
from broker.store.primary_gauge import RedisPrimaryGauge
from broker.store.scripts import RedisCallError

logger = logging.getLogger("skiff.broker")


async def primary_address(redis: Redis, key: str) -> str:
    """`host:port` (or the socket path) of the primary serving `key`. Raises RedisCallError."""
    try:
        if isinstance(redis, RedisCluster):
            await redis.initialize()
            node = redis.get_node_from_key(key)
            if node is None:
                raise RedisCallError(f"no Cluster node serves {key}", transient=True)
            return f"{node.host}:{node.port}"
        pool: Any = redis.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]
            return f"{host}:{port}"
    except (redis_errors.RedisError, OSError) as err:
        raise RedisCallError.wrap("finding the Redis primary", err) from err
    kwargs = pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


async def _leave_old_primary(redis: Redis) -> None:
    """Close every connection to a primary the Sentinels replaced, those in use included.

    redis-py closes only the idle ones when it learns of a failover; one in use — a follower's
    blocking stream read, held for its whole life — would go on reading from the old server,
    which, cut off from the Sentinels but not from this process, may act as a primary for as
    long as the partition lasts while the leader publishes on the new one. Closed, the
    command fails like any lost connection and its caller reconnects to the new primary. (A
    Cluster primary cut off from the majority refuses commands by itself: CLUSTERDOWN.)"""
    if isinstance(redis, RedisCluster):
        return
    pool: Any = redis.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        await pool.disconnect(inuse_connections=True)


async def watch_primary(
    redis: Redis, key: str, gauge: RedisPrimaryGauge, *, who: str, interval_s: float = 1.0
) -> None:
    """Keep `gauge` on the primary in use and log each change (runs until cancelled)."""
    while True:
        try:
            address = await primary_address(redis, key)
        except RedisCallError as err:
            logger.debug("%s: cannot tell the Redis primary now: %s", who, err)
        else:
            if address != gauge.address:
                if gauge.address is None:
                    logger.info("%s uses Redis primary %s", who, address)
                else:
                    logger.warning(
                        "%s: Redis primary changed from %s to %s", who, gauge.address, address
                    )
                    await _leave_old_primary(redis)
                gauge.set(address)
        honour_cancellation()
        await asyncio.sleep(interval_s)
