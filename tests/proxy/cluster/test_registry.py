"""StreamRegistry against a real Redis: records with TTLs, compare-and-set moves, placements."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from broker.store.connection import connect
from broker.store.keyspace import Keyspace
from proxy.cluster.registry import (
    KeepAlive,
    RegistryError,
    StreamRecord,
    StreamRegistry,
    instance_digest,
)
from tests.support.polling import eventually
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(20)

RECORD = StreamRecord("top", {"limit": 3, "b": [1, {"z": 1, "a": 2}]}, "f-0", 1_700_000_000_000)


def test_record_table() -> None:
    assert RECORD.encode() == (
        b'{"resource":"top","params":{"limit":3,"b":[1,{"z":1,"a":2}]},"node":"f-0",'
        b'"created_ms":1700000000000}'
    )
    assert StreamRecord.decode(RECORD.encode()) == RECORD
    assert RECORD.moved_to("f-1").node_id == "f-1"


@pytest.mark.parametrize(
    "bad",
    [b"[]", b"{}", b'{"resource":1,"params":{},"node":"f","created_ms":1}',
     b'{"resource":"r","params":{},"node":"f","created_ms":true}', b"nope"],
)  # fmt: skip
def test_record_rejects(bad: bytes) -> None:
    with pytest.raises(ValueError):
        StreamRecord.decode(bad)


def test_instance_digest_ignores_member_order_only() -> None:
    assert instance_digest("top", {"a": 1, "b": {"x": 1, "y": 2}}) == instance_digest(
        "top", {"b": {"y": 2, "x": 1}, "a": 1}
    )
    assert instance_digest("top", {"a": 1}) != instance_digest("top", {"a": 2})
    assert instance_digest("top", {"a": 1}) != instance_digest("other", {"a": 1})
    assert instance_digest("top", [1, 2]) != instance_digest("top", [2, 1])


async def test_put_get_touch_delete(redis_client: Redis, keyspace: Keyspace) -> None:
    registry = StreamRegistry(redis_client, keyspace, ttl_ms=5_000)
    assert await registry.get("f-0.x") is None
    await registry.put("f-0.x", RECORD, placement="d1")
    assert await registry.get("f-0.x") == RECORD
    assert await registry.placement("d1") == "f-0"
    assert 0 < await redis_client.pttl(keyspace.stream("f-0.x")) <= 5_000
    await redis_client.pexpire(keyspace.stream("f-0.x"), 100)
    assert await registry.touch("f-0.x")
    assert await redis_client.pttl(keyspace.stream("f-0.x")) > 1_000
    assert await registry.delete("f-0.x")
    assert not await registry.touch("f-0.x")
    assert await registry.get("f-0.x") is None


async def test_records_lapse_without_use(redis_client: Redis, keyspace: Keyspace) -> None:
    registry = StreamRegistry(redis_client, keyspace, ttl_ms=150)
    await registry.put("s", RECORD, placement=None)
    assert await registry.get("s") is not None
    await eventually(lambda: _absent(registry, "s"), within=2)


async def _absent(registry: StreamRegistry, stream_id: str) -> bool:
    return await registry.get(stream_id) is None


async def test_move_is_a_compare_and_set(redis_client: Redis, keyspace: Keyspace) -> None:
    registry = StreamRegistry(redis_client, keyspace, ttl_ms=5_000)
    await registry.put("s", RECORD, placement=None)
    # Two proxies see the same dead node and race to re-home the stream: one wins, the other
    # learns the winner's node.
    first, second = await asyncio.gather(
        registry.move("s", RECORD, "f-1"), registry.move("s", RECORD, "f-2")
    )
    assert first is not None and second is not None
    assert first == second
    assert first.node_id in ("f-1", "f-2")
    assert await registry.get("s") == first
    assert await registry.move("gone", RECORD, "f-1") is None


async def test_keepalive_refreshes_held_streams(redis_client: Redis, keyspace: Keyspace) -> None:
    registry = StreamRegistry(redis_client, keyspace, ttl_ms=300)
    await registry.put("held", RECORD, placement=None)
    await registry.put("free", RECORD, placement=None)
    async with KeepAlive(registry, interval_s=0.05) as keepalive:
        release = keepalive.hold("held")
        keepalive.hold("held")()  # a second hold released: the first still holds
        await asyncio.sleep(0.6)
        assert await registry.get("held") == RECORD
        assert await registry.get("free") is None
        release()
        release()  # idempotent
        assert keepalive.held == 0
    await eventually(lambda: _absent(registry, "held"), within=2)


async def test_redis_failures_are_registry_errors(redis_server_factory: ServerFactory) -> None:
    server = await redis_server_factory()
    redis = connect(server.url, timeout_s=0.5)
    try:
        registry = StreamRegistry(redis, Keyspace("reg"), ttl_ms=1_000)
        await server.stop()
        with pytest.raises(RegistryError):
            await registry.get("s")
        with pytest.raises(RegistryError):
            await registry.put("s", RECORD, placement="d")
    finally:
        await redis.aclose()
