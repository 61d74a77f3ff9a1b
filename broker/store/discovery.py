"""Finding the services that live in a Redis database (`skiff inspect`, a proxy without
--service)."""

from __future__ import annotations

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.store.keyspace import ServiceMarker, service_of, services_pattern
from broker.store.scripts import RedisCallError


async def find_services(redis: Redis, marker: ServiceMarker = "meta") -> list[str]:
    """The services of this database with a `marker` key, sorted: `meta` for those a leader
    initialised, `nodes` for those with a node registered. Raises RedisCallError."""
    found: set[str] = set()
    try:
        async for key in redis.scan_iter(match=services_pattern(marker), count=500):
            text = bytes(key).decode(errors="replace") if isinstance(key, bytes) else str(key)
            name = service_of(text, marker)
            if name is not None:
                found.add(name)
    except (redis_errors.RedisError, OSError) as err:
        raise RedisCallError.wrap("scanning for services", err) from err
    return sorted(found)
