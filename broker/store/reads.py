"""Reading the replication keys: what every node reads first (meta), and the checks a leader
makes before and after a write (idempotency records, whether an append landed). Writes go
through broker/store/fenced.py only."""

from __future__ import annotations

from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from broker.store.codec import Meta
from broker.store.keyspace import Keyspace
from broker.store.scripts import RedisCallError


async def read_meta(redis: Redis, keyspace: Keyspace) -> Meta | None:
    """The meta hash, or None when the keyspace is not initialised (or was lost)."""
    try:
        fields = await redis.hgetall(keyspace.meta)
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("reading meta", err) from err
    return Meta.decode(fields) if fields else None


async def read_idempotency(redis: Redis, keyspace: Keyspace, key: str) -> int | None:
    """The version at which the write carrying idempotency `key` was applied, if it was."""
    try:
        value = await redis.get(keyspace.idempotency(key))
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("reading an idempotency record", err) from err
    return None if value is None else int(value)


async def appended(redis: Redis, keyspace: Keyspace, epoch: str, version: int, term: int) -> bool:
    """Whether the append of `version` by the leader of `term` in `epoch` is in Redis: how a
    leader learns the outcome of an append whose reply it lost (a timeout, a dropped link).
    False also when Redis cannot be read."""
    entry_id = f"{version}-0"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hget(keyspace.meta, "epoch")
            pipe.xrange(keyspace.deltas, entry_id, entry_id)
            current, entries = await pipe.execute()
    except redis_errors.RedisError:
        return False
    if current != epoch.encode() or not entries:
        return False
    return bool(entries[0][1].get(b"term") == str(term).encode())


def queue_stream_read(
    pipe: Any, redis: Redis, stream: str, after: str, *, count: int, block_ms: int
) -> None:
    """Queue `XREAD COUNT count BLOCK block_ms STREAMS stream after` on `pipe` (of `redis`).

    On a Cluster it names the stream's node itself: redis-py would otherwise ask one fixed
    node which keys XREAD reads (`COMMAND GETKEYS`), and during another shard's failover that
    node may be the dead primary, failing reads of services on healthy shards."""
    if isinstance(redis, RedisCluster):
        node = redis.get_node_from_key(stream)
        pipe.execute_command(
            "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after,
            target_nodes=node,
        )  # fmt: skip
    else:
        pipe.xread({stream: after}, count=count, block=block_ms)
