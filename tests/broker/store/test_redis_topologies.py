"""The store on Redis as production runs it: a Cluster holding several services (one slot
each, found by a SCAN of every primary), and Sentinel telling every client the new primary
after a failover. Real servers (tests/support/redis_topologies.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.cluster import key_slot

from broker.store.connection import close_client, connect
from broker.store.discovery import find_services
from broker.store.keyspace import Keyspace
from broker.store.primary import primary_address, watch_primary
from broker.store.primary_gauge import RedisPrimaryGauge
from broker.store.reads import read_meta
from tests.support.fenced_steps import delta, init, lead, writes
from tests.support.redis_topologies import SentinelSet, ValkeyCluster

pytestmark = pytest.mark.timeout(90)


def test_every_key_of_a_service_is_in_one_slot() -> None:
    ks = Keyspace("shop-1.eu")
    keys = [
        ks.meta, ks.lease, ks.fence, ks.deltas, ks.inputs, ks.nodes, ks.snapshot("e", 7),
        ks.idempotency("k"), ks.node("n"), ks.stream("s"), ks.placement("p"),
    ]  # fmt: skip
    assert {key_slot(k.encode()) for k in keys} == {key_slot(b"{shop-1.eu}")}


async def test_services_spread_over_a_cluster_and_are_all_found() -> None:
    names = ["alpha", "beta", "delta", "gamma", "west"]
    async with ValkeyCluster() as cluster:
        redis = connect(cluster.url)
        try:
            for name in names:
                ks = Keyspace(name)
                writer = await lead(redis, ks, "a")
                await init(redis, ks, writer, epoch=f"e-{name}")
                await writer.append(delta(writer, 1, f"e-{name}"), writes(writer, 1))
                await redis.zadd(ks.nodes, {"n": 1})
            # SCAN visits every primary: services on all three shards are found.
            assert await find_services(redis) == sorted(names)
            assert await find_services(redis, "nodes") == sorted(names)
            shards = {await primary_address(redis, Keyspace(n).meta) for n in names}
            assert len(shards) == 3
            for name in names:
                meta = await read_meta(redis, Keyspace(name))
                assert meta is not None and (meta.epoch, meta.head) == (f"e-{name}", 1)
        finally:
            await close_client(redis)


async def test_sentinel_clients_follow_the_primary_through_a_failover() -> None:
    async with SentinelSet() as servers:
        redis = connect(servers.url)
        gauge = RedisPrimaryGauge(CollectorRegistry())
        try:
            ks = Keyspace("svc")
            first = await primary_address(redis, ks.meta)
            assert first == f"127.0.0.1:{servers.primary.port}"
            gauge.set(first)
            await redis.set(ks.fence, 1)
            old = await servers.kill_primary()
            new = await servers.wait_failover(old)
            deadline = time.monotonic() + 20
            while True:
                try:
                    await redis.incr(ks.fence)
                    break
                except Exception:  # the pool's old connections fail until it asks again
                    assert time.monotonic() < deadline
            assert await primary_address(redis, ks.meta) == f"127.0.0.1:{new.port}"
            gauge.set(f"127.0.0.1:{new.port}")
            assert gauge.address == f"127.0.0.1:{new.port}"
            assert int(await redis.get(ks.fence) or 0) == 2
        finally:
            await close_client(redis)


async def test_stream_reads_leave_a_primary_the_sentinels_replaced() -> None:
    """In a split brain the old primary stays reachable and keeps acting as one: a process
    tailing a stream (a follower's blocking reads, one connection reused) must move to the new
    primary, not go on reading the old one (redis-py closes only idle connections)."""
    async with SentinelSet(partitionable=True) as servers:
        redis = connect(servers.url)
        gauge = RedisPrimaryGauge(CollectorRegistry())
        ks = Keyspace("svc")
        watch = asyncio.create_task(
            watch_primary(redis, ks.meta, gauge, who="test", interval_s=0.1)
        )
        new_entry = asyncio.Event()

        async def tail(after: str) -> None:
            while not new_entry.is_set():
                try:
                    reply: Any = await redis.xread({ks.deltas: after}, block=1000)
                except redis_errors.ConnectionError:
                    continue
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        after = entry_id
                        if fields.get(b"v") == b"new":
                            new_entry.set()

        try:
            first = await redis.xadd(ks.deltas, {"v": "old"})
            await redis.execute_command("WAIT", 1, 2000)
            reading = asyncio.create_task(tail(first.decode()))
            await asyncio.sleep(0.3)
            servers.partition()
            promoted = await servers.wait_failover(servers.primary)
            async with Redis(host=promoted.host, port=promoted.port) as direct:
                await direct.xadd(ks.deltas, {"v": "new"})
            await asyncio.wait_for(new_entry.wait(), 5)
            await reading
            assert gauge.address == f"127.0.0.1:{promoted.port}"
            async with Redis(host=servers.primary.host, port=servers.primary.port) as old:
                # The old primary still acts as one: the split brain is real.
                assert (await old.execute_command("ROLE"))[0] == b"master"
        finally:
            watch.cancel()
            await close_client(redis)
