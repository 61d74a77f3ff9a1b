"""A follower behind a real leader (in-process candidates): writes through the follower, SSE on
the follower, snapshots and trims, a takeover, and a new epoch after Redis lost the data."""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest
from redis.asyncio import Redis

from broker import Init, ServeConfig, SkiffClient, Update
from broker.cluster.locator import LeaderLocator
from broker.follower.node import follower_node
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import admin_state, candidate, leading, meta_of
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(90)

CONFIG = ServeConfig(port=0, heartbeat_s=0.2, shutdown_timeout_s=1)


async def announced(redis: Redis, keyspace: Keyspace, node_id: str) -> bool:
    """Whether the lease holder is `node_id` and its heartbeat carries its URL yet."""
    found = await LeaderLocator(redis, keyspace, cache_s=0).leader()
    return found is not None and found.node_id == node_id and found.url is not None


async def same_state(leader_url: str, follower_url: str) -> bool:
    ours, theirs = await admin_state(leader_url), await admin_state(follower_url)
    return (ours["epoch"], ours["version"], ours["checksums"]) == (
        theirs["epoch"], theirs["version"], theirs["checksums"],
    )  # fmt: skip


async def test_writes_through_a_follower_reach_its_readers(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "lead-a", snapshot_every=5) as lead_node:
        lead = await leading(lead_node)
        await eventually(lambda: announced(redis_client, keyspace, "lead-a"))
        async with (
            follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as follower,
            SkiffClient(follower.url) as client,
        ):
            stream = await client.create_stream("top", {"limit": 10})
            async with aclosing(client.events(stream)) as events:
                first = await anext(events)
                assert isinstance(first, Init) and first.run == lead.epoch
                # Forwarded to the leader, acknowledged there, mirrored back here.
                version = await client.patch("votes", [("v3", vote(1, "cy"))], "idem-1")
                assert await anext(events) == Update(lead.epoch, version, [(1, [2])])
                # The same Idempotency-Key through the follower: applied once.
                again = await client.patch("votes", [("v3", vote(1, "cy"))], "idem-1")
                assert again == version
                for n in range(23):  # several snapshots and trims go by
                    await client.patch("votes", [(f"w{n}", vote(n % 3 + 1, f"u{n}"))])
                await eventually(lambda: same_state(lead_node.url or "", follower.url))
            meta = await meta_of(redis_client, keyspace)
            assert meta.snapshot >= 20 and follower.sync.resyncs == 0
            async with httpx.AsyncClient() as http:
                unknown = await http.patch(follower.url + "/v1/inputs/nope", json=[])
            assert unknown.status_code == 404


async def test_follower_keeps_up_through_a_takeover_and_a_new_epoch(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with (
        candidate(redis_url, service, "lead-a") as a,
        follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as follower,
        SkiffClient(follower.url) as client,
    ):
        first = await leading(a)
        await eventually(lambda: announced(redis_client, keyspace, "lead-a"))
        for n in range(5):
            await client.patch("votes", [(f"a{n}", vote(1, f"u{n}"))])
        async with candidate(redis_url, service, "lead-b") as b:
            a.stop()  # a clean stop releases the lease: b takes over at once
            second = await leading(b)
            await eventually(lambda: announced(redis_client, keyspace, "lead-b"))
            assert second.epoch == first.epoch  # rebuilt from snapshot + input log
            version = await client.patch("votes", [("b0", vote(2, "zed"))])
            assert version == 6
            await eventually(lambda: same_state(b.url or "", follower.url))
            assert follower.sync.resyncs == 0

            # Redis loses everything: the leader republishes its memory under a new epoch.
            stream = await client.create_stream("top", {"limit": 10})
            async with aclosing(client.events(stream)) as events:
                assert (await anext(events)).run == first.epoch
                async for key in redis_client.scan_iter(match=keyspace.pattern):
                    await redis_client.unlink(key)
                reinit = await anext(events)
                assert isinstance(reinit, Init) and reinit.run != first.epoch
                assert reinit.entries == [(1, [6]), (2, [2])]
            await eventually(lambda: same_state(b.url or "", follower.url), within=15)
            assert follower.sync.epoch == reinit.run
