"""External resources on a cluster (in-process candidates and a follower over real Redis): the
leader makes each update of a shared external collection durable like a write (the input log
names the collection, the delta carries what it changed, the follower mirrors it); a new leader
starts from that state and asks the service again, writing only what changed meanwhile; a
follower's resources subscribe to their own external resources locally."""

from __future__ import annotations

import dataclasses
from contextlib import aclosing
from typing import Any

import pytest
from redis.asyncio import Redis

from broker import Init, ServeConfig, SkiffClient
from broker.follower.node import follower_node
from broker.store.keyspace import Keyspace
from tests.support.external_services import Shop, ShopData, make_shop_service
from tests.support.leader_support import candidate, events, inputs, leading, meta_of
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(90)

CONFIG = ServeConfig(port=0, heartbeat_s=0.2, shutdown_timeout_s=1, idle_instance_s=0.3)


async def test_shared_external_updates_are_durable_writes_and_survive_a_takeover(
    redis_url: str, redis_client: Redis, keyspace: Keyspace
) -> None:
    data = ShopData()
    data.set("catalog", "apple", [3])
    shops = [Shop(data) for _ in range(3)]
    a_service, b_service, f_service = (
        make_shop_service(shop, name=keyspace.service) for shop in shops
    )
    async with candidate(redis_url, a_service, "lead-a") as a:
        lead = await leading(a)
        (name,) = lead.engine.externals.names("shared")
        await eventually(lambda: lead.engine.version == 1)
        logged = await inputs(redis_client, keyspace)
        assert [(e.version, e.writes) for e in logged] == [(1, {name: (("apple", [3]),)})]
        async with (
            follower_node(f_service, CONFIG, redis_url=redis_url, node_id="f-1") as follower,
            SkiffClient(follower.url) as client,
        ):
            await eventually(lambda: follower.sync.applied == 1)
            assert await client.snapshot("catalog") == [("apple", [3])]
            stream = await client.create_stream("catalog")
            async with aclosing(client.events(stream)) as stream_events:
                assert (await anext(stream_events)).entries == [("apple", [3])]
                data.set("catalog", "pear", [5])
                update = await anext(stream_events)
                assert (update.version, update.entries) == (2, [("pear", [5])])

            # The leader goes; the catalog changes before anyone asks the shop again.
            shops[1].hold()
            async with candidate(redis_url, b_service, "lead-b") as b:
                a.stop()
                second = await leading(b)
                # Rebuilt from Redis: the catalog as it was, before the shop answered.
                assert second.engine.collection_entries("catalog") == [
                    ("apple", [3]), ("pear", [5]),
                ]  # fmt: skip
                data.set("catalog", "apple", [])
                data.set("catalog", "plum", [7])
                shops[1].release()
                # The shop's whole content arrives; only the difference is written.
                await eventually(lambda: second.engine.version == 3)
                last = (await inputs(redis_client, keyspace))[-1]
                assert last.writes == {name: (("plum", [7]), ("apple", []))}
                await eventually(lambda: follower.sync.applied == 3)
                assert await client.snapshot("catalog") == [("pear", [5]), ("plum", [7])]
    assert [shop.shut_down for shop in shops] == [1, 1, 1]


async def test_a_followers_resources_read_their_external_resources_locally(
    redis_url: str, redis_client: Redis, keyspace: Keyspace
) -> None:
    data = ShopData()
    data.set("stock", "apple", [10], {"store": "north"})
    leader_shop, follower_shop = Shop(data), Shop(data)
    async with candidate(
        redis_url, make_shop_service(leader_shop, name=keyspace.service), "lead-a"
    ) as a:
        lead = await leading(a)
        service = make_shop_service(follower_shop, name=keyspace.service)
        async with (
            follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as follower,
            SkiffClient(follower.url) as client,
        ):
            version = follower.sync.applied
            stream = await client.create_stream("stock", {"store": "north"})
            async with aclosing(events(client, stream)) as stream_events:
                init = await anext(stream_events)
                assert isinstance(init, Init) and init.entries == [("apple", [10])]
                data.set("stock", "apple", [8], {"store": "north"})
                update = await anext(stream_events)
                assert (update.version, update.entries) == (version, [("apple", [8])])
            # Only the follower subscribed; nothing reached the leader or Redis.
            assert follower_shop.subscribed == [("stock", {"store": "north"})]
            assert ("stock", {"store": "north"}) not in leader_shop.subscribed
            assert (await meta_of(redis_client, keyspace)).head == lead.engine.version == version
            await client.delete_stream(stream)
            await eventually(lambda: follower_shop.live_count("stock") == 0, within=5)


async def test_a_snapshot_keeps_the_shared_external_collections(
    redis_url: str, redis_client: Redis, keyspace: Keyspace
) -> None:
    data = ShopData()
    for n in range(5):
        data.set("catalog", f"item-{n}", [n])
    service = make_shop_service(Shop(data), name=keyspace.service)
    every = {"snapshot_every": 2, "snapshot_interval_s": 0.2}
    async with candidate(redis_url, service, "lead-a", **every) as a:
        lead = await leading(a)
        await eventually(lambda: lead.engine.version == 1)
        for n in range(5, 8):
            data.set("catalog", f"item-{n}", [n])
        await eventually(lambda: lead.engine.version == 4)
        await eventually(lambda: lead.snapshot_version == 4)
    # A leader rebuilt from that snapshot alone: nothing after it to replay.
    assert (await meta_of(redis_client, keyspace)).snapshot == 4
    held = Shop(data)
    held.hold()
    again = dataclasses.replace(service, external_services={"shop": held})
    async with candidate(redis_url, again, "lead-b") as b:
        second = await leading(b)
        assert second.engine.version == 4
        assert len(second.engine.collection_entries("catalog")) == 8
        held.release()


async def test_a_new_version_of_the_service_that_opens_other_external_resources_takes_office(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, caplog: pytest.LogCaptureFixture
) -> None:
    data = ShopData()
    data.set("catalog", "apple", [3])
    service = make_shop_service(Shop(data), name=keyspace.service)
    async with candidate(redis_url, service, "lead-a") as a:
        lead = await leading(a)
        await eventually(lambda: lead.engine.version == 1)
        data.set("catalog", "pear", [5])
        await eventually(lambda: lead.engine.version == 2)

    # The next version asks the shop for its catalog with other params: another collection.
    def create_graph(inputs: Any, context: Any) -> dict[str, Any]:
        return {"catalog": context.use_external_resource("shop", "catalog", {"region": "eu"})}

    upgraded = dataclasses.replace(
        service, create_graph=create_graph, external_services={"shop": Shop(data)}
    )
    async with candidate(redis_url, upgraded, "lead-b") as b:
        second = await leading(b)
        # The old collection's logged updates are ignored; the new one is fetched afresh.
        await eventually(lambda: second.engine.version == 3)
        assert second.engine.collection_entries("catalog") == [("apple", [3]), ("pear", [5])]
    assert "no longer has" in caplog.text
