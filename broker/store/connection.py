"""Connecting to Redis the way every skiff node does: one server, Sentinel, or a Cluster.

The URL forms are in `broker/store/redis_url.py`. redis-py's default client retries a failed call
for seconds; a node must instead notice an outage quickly (to mark itself not ready and to let a
lease expire on time), so calls fail fast and the node's own loops retry with backoff. After a
failover that retry is what reconnects: a Sentinel-managed pool asks the Sentinels for the
primary on every new connection, and the Cluster client refreshes its slot map after a
connection error or a MOVED reply.

Every client is typed `Redis`: the Cluster client offers the same command methods, pipelines
(a pipeline's commands for one slot go to one node on one connection) and `aclose()`, and the
rest of the code base keeps one client type. What differs between them is behind this module:
`close_client`, and `broker/store/primary.py` (which server is the primary).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from broker.errors import ConfigError
from broker.store.redis_url import RedisAddress, parse_redis_url, redacted

__all__ = ["SentinelRedis", "close_client", "connect", "honour_cancellation", "redacted"]


class SentinelRedis(Redis):
    """A client of the primary Sentinel names; closing it closes the Sentinel connections too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        await super().aclose(close_connection_pool)
        for sentinel in manager.sentinels if manager is not None else []:
            await sentinel.aclose()


def connect(url: str, *, timeout_s: float = 2.0, pool_size: int | None = None) -> Redis:
    """A bytes-mode client for `url` that fails fast (no hidden retries).

    `pool_size` bounds its connections, and a call finding them all busy waits (up to
    `timeout_s`) for one instead of failing with "Too many connections": for a process making
    many concurrent calls, like the proxy under a burst of stream creations. (One server only:
    Sentinel and Cluster pools are not bounded.)"""
    address = parse_redis_url(url)
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    if address.topology == "sentinel":
        return _sentinel(address, options)
    if address.topology == "cluster":
        return _cluster(address, options)
    if pool_size is None:
        return Redis.from_url(url, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout_s, **options
    )
    return Redis(connection_pool=pool)


async def close_client(redis: Redis) -> None:
    """Close the client and every connection it opened (a pool it was handed too)."""
    await redis.aclose()
    if not isinstance(redis, RedisCluster):
        await redis.connection_pool.disconnect()


def _tls(address: RedisAddress) -> dict[str, Any]:
    if not address.tls:
        return {}
    tls: dict[str, Any] = {"ssl": True}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"):
        if name in address.options:
            tls[name] = address.options[name]
    return tls


def _sentinel(address: RedisAddress, options: dict[str, Any]) -> Redis:
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_") or k == "retry"}
    sentinel_options |= _tls(address)
    if "sentinel_password" in address.options:
        sentinel_options["password"] = address.options["sentinel_password"]
        sentinel_options["username"] = address.options.get("sentinel_username")
    manager = Sentinel(list(address.hosts), sentinel_kwargs=sentinel_options)
    return cast(
        Redis,
        manager.master_for(
            address.master,
            redis_class=SentinelRedis,
            db=address.db,
            username=address.username,
            password=address.password,
            # A connection to a server that is a replica now (the old primary, back) is
            # dropped on its first READONLY reply, and the next one asks the Sentinels again.
            check_connection=True,
            **options,
            **_tls(address),
        ),
    )


def _cluster(address: RedisAddress, options: dict[str, Any]) -> Redis:
    if address.tls is False and address.options.keys() & {"ssl_ca_certs", "ssl_certfile"}:
        raise ConfigError("TLS options need rediss+cluster://")
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.hosts],
        username=address.username,
        password=address.password,
        # Two attempts: the second follows a refreshed slot map after a failover or a MOVED.
        retry=Retry(NoBackoff(), 1),
        **{k: v for k, v in options.items() if k not in ("retry", "retry_on_timeout")},
        **_tls(address),
    )
    return cast(Redis, cluster)


def honour_cancellation() -> None:
    """Raise CancelledError if the current task was asked to cancel.

    Call it after a Redis command in a loop that is stopped by cancelling its task. On Python
    3.11 redis-py sends commands under `asyncio.wait_for`, which loses a cancellation that lands
    as the send completes (CPython gh-86296, fixed in 3.12): the command returns normally, the
    task stays marked as cancelling, and a `while True` loop would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
