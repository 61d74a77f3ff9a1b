"""A follower node over HTTP: SSE readers, health, admin checksums, heartbeat, Redis outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker import Init, ServeConfig, SkiffClient, Update
from broker.follower.node import FollowerNode, follower_node
from broker.serving.admin import checksums
from broker.store.connection import connect
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from graph import Service
from tests.support.helpers import vote
from tests.support.polling import eventually
from tests.support.redis_server import ServerFactory
from tests.support.scripted_leader import ScriptedLeader

pytestmark = pytest.mark.timeout(60)

CONFIG = ServeConfig(port=0, heartbeat_s=0.2, shutdown_timeout_s=1)


@pytest.fixture
async def follower(
    leader: ScriptedLeader, redis_url: str, service: Service
) -> AsyncIterator[FollowerNode]:
    async with follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as node:
        yield node


async def health(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        reply = await http.get(url + "/healthz")
    return reply.status_code, reply.json()


async def test_serves_the_mirror_and_streams_updates(
    leader: ScriptedLeader, follower: FollowerNode
) -> None:
    async with SkiffClient(follower.url) as client:
        stream = await client.create_stream("top", {"limit": 10})
        events = client.events(stream)
        assert await anext(events) == Init(leader.epoch, 0, [(1, [1]), (2, [1])])
        version = await leader.write({"votes": [("v3", vote(1, "cy"))]})
        assert await anext(events) == Update(leader.epoch, version, [(1, [2])])
        # Every resource of the service is served from the mirror.
        assert await client.snapshot("by_author", {"author": "ann"}) == [
            (1, ["hello"]),
            (3, ["again"]),
        ]
        await events.aclose()
    status, body = await health(follower.url)
    assert status == 200
    assert body["role"] == "follower" and body["epoch"] == leader.epoch
    assert body["version"] == version and body["lag_versions"] == 0


async def test_admin_state_matches_the_leader(
    leader: ScriptedLeader, follower: FollowerNode
) -> None:
    for n in range(20):
        await leader.write({"votes": [(f"k{n % 7}", vote(n % 4, f"u{n}"))]})
    await eventually(lambda: follower.sync.applied == leader.version)
    async with httpx.AsyncClient() as http:
        state = (await http.get(follower.url + "/v1/admin/state")).json()
    assert state == {
        "node": "f-1",
        "role": "follower",
        "epoch": leader.epoch,
        "version": leader.version,
        "checksums": checksums(leader.engine),
    }


async def test_metrics(leader: ScriptedLeader, follower: FollowerNode) -> None:
    await leader.write({"votes": [("v3", vote(1, "cy"))]})
    await eventually(lambda: follower.sync.applied == 1)
    await asyncio.sleep(1.2)  # one heartbeat refreshes the gauges
    async with httpx.AsyncClient() as http:
        text = (await http.get(follower.url + "/metrics")).text
    assert 'skiff_applied_version{node="f-1",role="follower"} 1.0' in text
    assert 'skiff_lag_versions{node="f-1",role="follower"} 0.0' in text


async def test_heartbeat_record_while_running(
    leader: ScriptedLeader, redis_url: str, service: Service, redis_client: Redis,
    keyspace: Keyspace,
) -> None:  # fmt: skip
    async with follower_node(service, CONFIG, redis_url=redis_url, node_id="f-2") as node:

        async def record() -> NodeRecord | None:
            raw = await redis_client.get(keyspace.node("f-2"))
            return None if raw is None else NodeRecord.decode(raw)

        found = await eventually(record)
        assert (found.role, found.epoch, found.url, found.ready) == (
            "follower", leader.epoch, node.url, True,
        )  # fmt: skip
        assert found.capacity == CONFIG.max_streams  # the proxy routes by it
        assert 0 < await redis_client.pttl(keyspace.node("f-2")) <= 3000
    assert await redis_client.get(keyspace.node("f-2")) is None
    assert await redis_client.zscore(keyspace.nodes, "f-2") is None


async def test_redis_outage_keeps_streams_and_resumes_without_gaps(
    redis_server_factory: ServerFactory, service: Service
) -> None:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    redis = connect(server.url)
    leader = ScriptedLeader(redis, Keyspace(service.name), service)
    await leader.start_epoch()
    try:
        async with (
            follower_node(service, CONFIG, redis_url=server.url, node_id="f-3") as node,
            SkiffClient(node.url) as client,
        ):
            stream = await client.create_stream("top", {"limit": 10})
            events = client.events(stream, reconnect=False)
            seen = [await anext(events)]
            for n in range(3):
                await leader.write({"votes": [(f"a{n}", vote(1, f"u{n}"))]})
                seen.append(await anext(events))

            await server.stop()
            await eventually(lambda: health_is(node.url, 503, "redis unreachable"), within=10)
            # Still serving what it has: reads, new streams, the open stream's heartbeats.
            assert await client.snapshot("top", {"limit": 1}) == [(1, [4])]
            other = await client.create_stream("top", {"limit": 1})
            async with aclosing(client.events(other, reconnect=False)) as other_events:
                assert isinstance(await anext(other_events), Init)

            await server.start()
            await eventually(lambda: answers(redis))  # the test leader's pool reconnects
            await eventually(lambda: health_is(node.url, 200, "ok"), within=10)
            for n in range(3):
                await leader.write({"votes": [(f"b{n}", vote(1, f"w{n}"))]})
                seen.append(await anext(events))
            await events.aclose()
    finally:
        await redis.aclose()
    # One init, then one update per version: none skipped, none twice.
    assert [type(e) for e in seen] == [Init] + [Update] * 6
    assert [e.version for e in seen] == list(range(7))
    assert seen[-1].entries == [(1, [7])]


async def answers(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except RedisError:
        return False


async def health_is(url: str, status: int, reason: str) -> bool:
    got, body = await health(url)
    return got == status and body["status"] == reason


async def test_a_replication_loop_that_dies_leaves_the_node_not_ready(
    leader: ScriptedLeader, redis_url: str, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error the loop does not expect is not lost: the node says why it is not ready."""
    from broker.follower.sync import MirrorSync

    async def broken(self: MirrorSync) -> None:
        raise RuntimeError("replication bug")

    monkeypatch.setattr(MirrorSync, "run", broken)
    async with follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as node:
        await eventually(lambda: node.sync.state == "stalled")
        status, body = await health(node.url)
        assert status == 503
        assert "replication bug" in body["error"]
