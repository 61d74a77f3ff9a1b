"""Membership from real heartbeats in a real Redis: joins and departures within 1 s."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from redis.asyncio import Redis

from broker.cluster.heartbeat import Heartbeat
from broker.store.codec import LeaseRecord
from broker.store.connection import connect
from broker.store.discovery import find_services
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from proxy import Cluster, Membership, ProxyError
from proxy.cluster.membership import _log_changes
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(20)


def record(role: str = "follower") -> NodeRecord:
    return NodeRecord(
        node_id="ignored", role=role, epoch="e1", applied=3, ts_ms=0, started_ms=1,
        ready=True, url="http://127.0.0.1:1",
    )  # fmt: skip


async def wait_for(members: Membership, predicate: object, within: float) -> float:
    """Seconds until `predicate(cluster)` held (fails past `within`)."""
    started = time.monotonic()
    found = await members.wait_for(predicate, within)
    assert found is not None, f"not within {within} s: {members.cluster}"
    return time.monotonic() - started


async def test_joins_and_departures_within_a_second(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    async with Membership(redis_client, keyspace, interval_s=0.25) as members:
        assert members.cluster.nodes == {}
        assert members.healthy
        beat = Heartbeat(redis_client, keyspace, "f-0", record, interval_s=0.1, ttl_ms=500)
        async with beat:
            took = await wait_for(members, lambda c: "f-0" in c.nodes, within=1.0)
            assert took < 1.0
            assert members.cluster.nodes["f-0"].applied == 3
        # A clean exit deregisters: gone at the next poll.
        await wait_for(members, lambda c: "f-0" not in c.nodes, within=1.0)


async def test_a_node_that_stops_beating_leaves_rotation(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    beat = Heartbeat(redis_client, keyspace, "f-1", record, interval_s=0.1, ttl_ms=300)
    async with Membership(redis_client, keyspace, interval_s=0.05) as members:
        await beat.beat()
        await wait_for(members, lambda c: "f-1" in c.nodes, within=1.0)
        # No more beats (a crash): the record's TTL lapses and the node is gone.
        await wait_for(members, lambda c: "f-1" not in c.nodes, within=1.0)
    # Still in the index (inspect shows it as gone), just not a member.
    assert await redis_client.zscore(keyspace.nodes, "f-1") is not None


async def test_lease_holder_is_the_leader(redis_client: Redis, keyspace: Keyspace) -> None:
    beat = Heartbeat(redis_client, keyspace, "lead-0", lambda: record("leader"),
                     interval_s=0.1, ttl_ms=500)  # fmt: skip
    await beat.beat()
    await redis_client.set(keyspace.lease, LeaseRecord(7, "lead-0/4242-abcdef").encode())
    async with Membership(redis_client, keyspace, interval_s=0.05) as members:
        cluster = await members.wait_for(lambda c: c.leader is not None, 1.0)
        assert cluster is not None
        assert cluster.leader_id == "lead-0"
        assert cluster.holder == "lead-0/4242-abcdef"
        await redis_client.delete(keyspace.lease)
        await wait_for(members, lambda c: c.leader is None, within=1.0)
    await beat.deregister()


async def test_undecodable_records_are_skipped(redis_client: Redis, keyspace: Keyspace) -> None:
    await redis_client.zadd(keyspace.nodes, {"junk": 1, "ok": 1})
    await redis_client.set(keyspace.node("junk"), b"{not json")
    good = Heartbeat(redis_client, keyspace, "ok", record, interval_s=0.1, ttl_ms=500)
    await good.beat()
    members = Membership(redis_client, keyspace)
    cluster = await members.refresh()
    assert list(cluster.nodes) == ["ok"]
    await good.deregister()


async def test_redis_outage_keeps_the_last_view(redis_server_factory: ServerFactory) -> None:
    server = await redis_server_factory()
    redis = connect(server.url, timeout_s=0.3)
    keyspace = Keyspace("outage")
    try:
        beat = Heartbeat(redis, keyspace, "f-0", record, interval_s=0.1, ttl_ms=5_000)
        await beat.beat()
        members = Membership(redis, keyspace, interval_s=0.05, stale_after_s=0.3)
        async with members:
            assert "f-0" in members.cluster.nodes
            await server.stop()
            await asyncio.sleep(0.6)
            assert "f-0" in members.cluster.nodes  # the nodes keep serving what they have
            assert not members.healthy
            with pytest.raises(ProxyError):
                await members.refresh()
    finally:
        await redis.aclose()


async def test_wait_for_times_out(redis_client: Redis, keyspace: Keyspace) -> None:
    async with Membership(redis_client, keyspace, interval_s=0.05) as members:
        assert await members.wait_for(lambda c: bool(c.nodes), 0.2) is None
        assert await members.wait_for(lambda c: isinstance(c, Cluster), 0.2) is not None


async def test_discover_service(redis_client: Redis, keyspace: Keyspace) -> None:
    beat = Heartbeat(redis_client, keyspace, "f-0", record, interval_s=0.1, ttl_ms=5_000)
    await beat.beat()
    assert keyspace.service in await find_services(redis_client, "nodes")
    await beat.deregister()


def _node(node_id: str, role: str, url: str | None, ready: bool = True) -> NodeRecord:
    return NodeRecord(
        node_id=node_id, role=role, epoch="e1", applied=0, ts_ms=0, started_ms=1,
        ready=ready, url=url,
    )  # fmt: skip


def test_a_normal_start_logs_what_a_person_needs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="skiff.proxy")
    candidate = _node("leader", "candidate", None, ready=False)
    follower = _node("follower-1", "follower", "http://127.0.0.1:2")
    views = [
        Cluster(),
        Cluster({"leader": candidate}),  # registers before it listens
        Cluster({"leader": candidate}, holder="leader/1-a"),  # takes the lease
        Cluster({"leader": _node("leader", "leader", "http://127.0.0.1:1")}, holder="leader/1-a"),
        Cluster(
            {"leader": _node("leader", "leader", "http://127.0.0.1:1"), "follower-1": follower},
            holder="leader/1-a",
        ),
        Cluster(
            {
                "leader": _node("leader", "leader", "http://127.0.0.1:1", ready=False),
                "follower-1": follower,
            },
            holder="leader/1-a",
        ),
    ]
    for before, after in itertools.pairwise(views):
        _log_changes(before, after)
    assert caplog.messages == [
        "node leader joined (candidate)",
        "node leader is the leader (holds the lease)",
        # (its record then says "leader": nothing new to say)
        "node follower-1 joined (follower at http://127.0.0.1:2)",
        "node leader is now leader, not ready",
    ]
