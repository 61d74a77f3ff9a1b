"""Heartbeat: records with a TTL while the node runs, gone on exit, Redis errors never fatal."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.cluster.heartbeat import Heartbeat
from broker.store.connection import connect
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from tests.support.polling import eventually
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(30)


def record(applied: int = 0) -> NodeRecord:
    return NodeRecord(
        node_id="ignored", role="follower", epoch="e1", applied=applied, ts_ms=0,
        started_ms=5, ready=True, url="http://127.0.0.1:1",
    )  # fmt: skip


async def test_record_with_ttl_then_deregistered(redis_client: Redis, keyspace: Keyspace) -> None:
    applied = [3]
    heartbeat = Heartbeat(
        redis_client, keyspace, "node-a", lambda: record(applied[0]), interval_s=0.1, ttl_ms=500
    )
    async with heartbeat:
        await eventually(lambda: redis_client.exists(keyspace.node("node-a")))
        stored = NodeRecord.decode(await redis_client.get(keyspace.node("node-a")))
        assert stored.node_id == "node-a" and stored.applied == 3 and stored.ts_ms > 0
        assert 0 < await redis_client.pttl(keyspace.node("node-a")) <= 500
        score = await redis_client.zscore(keyspace.nodes, "node-a")
        assert score == stored.ts_ms
        # Each beat reads the current state.
        applied[0] = 9

        async def updated() -> bool:
            raw = await redis_client.get(keyspace.node("node-a"))
            return raw is not None and NodeRecord.decode(raw).applied == 9

        await eventually(updated)
    assert not await redis_client.exists(keyspace.node("node-a"))
    assert await redis_client.zscore(keyspace.nodes, "node-a") is None
    assert heartbeat.errors == 0


async def test_record_expires_when_the_node_stops_beating(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    heartbeat = Heartbeat(redis_client, keyspace, "node-b", record, interval_s=0.05, ttl_ms=200)
    assert await heartbeat.beat()
    assert await redis_client.exists(keyspace.node("node-b"))
    await asyncio.sleep(0.4)
    assert not await redis_client.exists(keyspace.node("node-b"))
    # The index keeps the last beat time: inspect shows the node as gone, not unknown.
    assert await redis_client.zscore(keyspace.nodes, "node-b") is not None


async def test_redis_errors_are_counted_and_retried(
    redis_server_factory: ServerFactory, keyspace: Keyspace
) -> None:
    server = await redis_server_factory()
    redis = connect(server.url, timeout_s=0.5)
    errors: list[Exception] = []
    try:
        heartbeat = Heartbeat(
            redis, keyspace, "node-c", record, interval_s=0.05, ttl_ms=1000,
            on_error=errors.append,
        )  # fmt: skip
        async with heartbeat:
            await eventually(lambda: redis.exists(keyspace.node("node-c")))
            await server.stop()
            await eventually(lambda: heartbeat.errors >= 2)
            await server.start()
            before = heartbeat.errors

            async def beating_again() -> bool:
                try:
                    return bool(await redis.exists(keyspace.node("node-c")))
                except RedisError:  # the test's own pooled connection died with the server
                    return False

            await eventually(beating_again)
            assert heartbeat.errors >= before
        assert len(errors) == heartbeat.errors
        assert not await redis.exists(keyspace.node("node-c"))
    finally:
        await redis.aclose()


async def test_exit_while_redis_is_down_does_not_raise(
    redis_server_factory: ServerFactory, keyspace: Keyspace
) -> None:
    server = await redis_server_factory()
    redis = connect(server.url, timeout_s=0.5)
    try:
        heartbeat = Heartbeat(redis, keyspace, "node-d", record, interval_s=0.05, ttl_ms=1000)
        async with heartbeat:
            await server.stop()
            await asyncio.sleep(0.1)
        assert heartbeat.errors >= 1
    finally:
        await redis.aclose()


def test_ttl_must_outlast_the_interval(keyspace: Keyspace) -> None:
    with pytest.raises(ValueError):
        Heartbeat(None, keyspace, "n", record, interval_s=1.0, ttl_ms=1000)  # type: ignore[arg-type]
