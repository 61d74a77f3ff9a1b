"""`--durability`: an append waits for replicas (WAIT / WAITAOF on the write's own connection)
and raises NotDurableError, with the entry on the primary, when they do not confirm in time.
Real servers: a primary with one replica, and a Cluster."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from broker.errors import ConfigError
from broker.store.connection import close_client, connect
from broker.store.durability import Durability, NotDurableError
from broker.store.fenced import FencedWriter
from broker.store.keyspace import Keyspace
from broker.store.reads import read_meta
from tests.support.fenced_steps import delta, init, lead, writes
from tests.support.redis_topologies import SentinelSet, ValkeyCluster

pytestmark = pytest.mark.timeout(60)

REPLICA = Durability("replica", timeout_ms=300)


@pytest_asyncio.fixture
async def replicated() -> AsyncIterator[SentinelSet]:
    async with SentinelSet(sentinels=0, appendonly=True) as servers:
        yield servers


@pytest_asyncio.fixture
async def primary(replicated: SentinelSet) -> AsyncIterator[Redis]:
    redis = connect(replicated.primary.url)
    try:
        yield redis
    finally:
        await close_client(redis)


def durable(writer: FencedWriter, durability: Durability) -> FencedWriter:
    return FencedWriter(writer._redis, writer._keys, writer.lease, durability)


def test_settings_are_checked() -> None:
    assert Durability().command is None
    assert Durability("replica", replicas=2, timeout_ms=50).command == ("WAIT", 2, 50)
    assert Durability("aof", replicas=0).command == ("WAITAOF", 1, 0, 1000)
    for bad in (
        {"mode": "disk"},
        {"mode": "replica", "replicas": 0},
        {"mode": "none", "timeout_ms": 0},
    ):
        with pytest.raises(ConfigError):
            Durability(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["replica", "aof"])
async def test_an_append_returns_once_the_replica_holds_it(
    replicated: SentinelSet, primary: Redis, mode: str
) -> None:
    ks = Keyspace("durable")
    writer = durable(await lead(primary, ks, "a"), Durability(mode, timeout_ms=2000))  # type: ignore[arg-type]
    await init(primary, ks, writer)
    for version in range(1, 3):
        entry = delta(writer, version, ranked=((1, [version]),))
        await writer.append(entry, writes(writer, version))
    await writer.confirm()
    replica = connect(replicated.replicas[0].url)
    try:
        meta = await read_meta(replica, ks)
    finally:
        await close_client(replica)
    assert meta is not None and meta.head == 2


async def confirmed(writer: FencedWriter, within_s: float = 20) -> None:
    """Wait until the replica confirms what `writer` appended."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await writer.confirm()
            return
        except NotDurableError:
            assert time.monotonic() < deadline


async def test_without_the_replica_an_append_lands_unconfirmed(
    replicated: SentinelSet, primary: Redis
) -> None:
    ks = Keyspace("durable")
    writer = durable(await lead(primary, ks, "a"), REPLICA)
    await init(primary, ks, writer)
    # The replica may still be resyncing after an earlier test: wait until it confirms, so the
    # 300 ms bound below is about the dead replica only.
    await confirmed(writer)
    await writer.append(delta(writer, 1), writes(writer, 1))
    await replicated.replicas[0].kill()
    started = time.monotonic()
    with pytest.raises(NotDurableError):
        await writer.append(delta(writer, 2), writes(writer, 2))
    assert 0.25 <= time.monotonic() - started < 2.0
    meta = await read_meta(primary, ks)
    assert meta is not None and meta.head == 2  # on the primary, not acknowledged
    with pytest.raises(NotDurableError):
        await writer.confirm()
    await replicated.replicas[0].start()  # resyncs from the primary: confirmed again
    await confirmed(writer)
    await writer.append(delta(writer, 3), writes(writer, 3))


async def test_none_does_not_wait(replicated: SentinelSet, primary: Redis) -> None:
    ks = Keyspace("durable")
    writer = await lead(primary, ks, "a")
    await init(primary, ks, writer)
    await replicated.replicas[0].kill()
    started = time.monotonic()
    await writer.append(delta(writer, 1), writes(writer, 1))
    await writer.confirm()
    # No replica to wait for and none asked: acknowledged at once, on the primary.
    assert time.monotonic() - started < 0.25
    meta = await read_meta(primary, ks)
    assert meta is not None and meta.head == 1


async def test_on_a_cluster_the_wait_goes_to_the_slot_s_primary() -> None:
    async with ValkeyCluster() as cluster:
        redis = connect(cluster.url)
        try:
            writers = {}
            for name in ("alpha", "beta", "gamma", "delta"):
                ks = Keyspace(name)
                writer = durable(await lead(redis, ks, "a"), Durability("replica", timeout_ms=2000))
                await init(redis, ks, writer)
                await writer.append(delta(writer, 1), writes(writer, 1))
                await writer.confirm()
                writers[name] = writer
            # Without its replica, the shard of one service refuses to acknowledge.
            primary = await cluster.primary_of(Keyspace("alpha").meta)
            await (await cluster.replica_of(primary)).kill()
            alpha = durable(writers["alpha"], REPLICA)
            with pytest.raises(NotDurableError):
                await alpha.append(delta(alpha, 2), writes(alpha, 2))
        finally:
            await close_client(redis)
