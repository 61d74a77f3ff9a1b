"""External resources on a single node, over HTTP: a shared one (create_graph's) moves the
version like a write; a resource's own is subscribed when its instance is built, updated by
local ticks (the version stays), released with the instance; reads wait for the first content;
failures reach the client as clear errors and leave nothing behind."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import httpx
import pytest

from broker import Init, ServeConfig, SkiffClient, Update
from broker.errors import ClientError, StreamDisconnectedError
from broker.serving.server import running
from tests.support.external_services import Shop, make_shop_service
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(30)

CONFIG = ServeConfig(port=0, idle_instance_s=0.2, external_load_timeout_s=1.0, shutdown_timeout_s=1)


async def test_a_shared_external_resource_updates_like_a_write() -> None:
    shop = Shop()
    shop.set("catalog", "apple", [3])
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        assert await client.snapshot("catalog") == [("apple", [3])]
        stream = await client.create_stream("catalog")
        async with aclosing(client.events(stream)) as events:
            init = await anext(events)
            assert isinstance(init, Init) and init.entries == [("apple", [3])]
            shop.set("catalog", "pear", [5])
            update = await anext(events)
            assert isinstance(update, Update) and update.entries == [("pear", [5])]
            assert update.version == init.version + 1
            # The same content again changes nothing: no tick, no version.
            shop.set("catalog", "pear", [5])
            shop.set("catalog", "apple", [])
            update = await anext(events)
            assert update.entries == [("apple", [])] and update.version == init.version + 2
        async with httpx.AsyncClient(base_url=node.url) as http:
            health = (await http.get("/healthz")).json()
        (name,) = node.hub.engine.externals.names("shared")
        assert health["externals"] == {
            "subscriptions": {"ready": 1}, "shared": {name: "ready"}, "errors": 0,
        }  # fmt: skip
    assert shop.shut_down == 1 and shop.live == {}


async def test_a_resources_own_external_resource_is_local_to_its_instance() -> None:
    shop = Shop()
    shop.set("stock", "apple", [10], {"store": "north"})
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        version = node.hub.engine.version
        stream = await client.create_stream("stock", {"store": "north"})
        # One subscription per (identifier, params), whoever asks.
        again = await client.create_stream("stock", {"store": "north"})
        assert shop.subscribed.count(("stock", {"store": "north"})) == 1
        async with aclosing(client.events(stream)) as events:
            init = await anext(events)
            assert isinstance(init, Init) and init.entries == [("apple", [10])]
            shop.set("stock", "apple", [9], {"store": "north"})
            update = await anext(events)
            assert update.entries == [("apple", [9])]
            # Nothing replicated changed: the version stays where it was.
            assert update.version == version == node.hub.engine.version
            # A reader coming now gets the content as it is (not an init cached before).
            async with aclosing(client.events(again)) as second:
                assert (await anext(second)).entries == [("apple", [9])]
            # Resuming from the version it saw may have missed a local change: an init.
            async with aclosing(client.events(stream, last_event_id=update.event_id)) as back:
                resumed = await anext(back)
                assert isinstance(resumed, Init) and resumed.entries == [("apple", [9])]
        # Another store: another subscription; the other one is not told of it.
        assert await client.snapshot("stock", {"store": "south"}) == []
        assert ("stock", {"store": "south"}) in shop.subscribed
        await client.delete_stream(stream)
        await client.delete_stream(again)
        # The instance goes after its idle delay, and its subscription with it.
        await eventually(lambda: shop.live_count("stock") == 0, within=5)
        assert len(shop.unsubscribed) == 2


async def test_reads_wait_for_the_first_content() -> None:
    shop = Shop()
    shop.set("stock", "apple", [1], {"store": "north"})
    shop.set("catalog", "pear", [5])
    shop.hold()
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        read = asyncio.create_task(client.snapshot("stock", {"store": "north"}))
        # The catalog resource reads a shared collection: it waits for create_graph's too.
        catalog = asyncio.create_task(client.snapshot("catalog"))
        await asyncio.sleep(0.2)
        assert not read.done() and not catalog.done()
        shop.release()
        assert await read == [("apple", [1])]
        assert await catalog == [("pear", [5])]


async def test_content_that_never_comes_is_a_503_and_leaves_nothing() -> None:
    shop = Shop()
    shop.hold()
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        with pytest.raises(ClientError) as caught:
            await client.create_stream("stock", {"store": "north"})
        assert caught.value.status == 503 and "loading" in caught.value.message
        assert node.hub.stream_count == 0
        with pytest.raises(ClientError) as caught:
            await client.snapshot("stock", {"store": "north"})
        assert caught.value.status == 503
        shop.release()


async def test_a_subscription_that_fails_is_a_502_and_is_tried_again_later() -> None:
    shop = Shop()
    shop.fail.add("stock")
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        for call in (
            client.create_stream("stock", {"store": "north"}),
            client.snapshot("stock", {"store": "north"}),
            client.lookup("stock", "apple", {"store": "north"}),
        ):
            with pytest.raises(ClientError) as caught:
                await call
            assert caught.value.status == 502
            assert "the shop has no stock today" in caught.value.message
        assert node.hub.stream_count == 0 and node.hub.engine.instance_count == 0
        assert node.hub.engine.externals.by_name.keys() == {
            name for name in node.hub.engine.externals.names("shared")
        }
        # The shop is back: the next request subscribes afresh.
        shop.fail.clear()
        shop.set("stock", "apple", [4], {"store": "north"})
        assert await client.lookup("stock", "apple", {"store": "north"}) == [4]


async def test_an_update_user_code_cannot_take_ends_the_streams_reading_it() -> None:
    shop = Shop()
    shop.set("stock", "apple", [2], {"store": "north"})
    async with running(make_shop_service(shop), CONFIG) as node, SkiffClient(node.url) as client:
        stream = await client.create_stream("stock", {"store": "north"})
        async with aclosing(client.events(stream, reconnect=False)) as events:
            await anext(events)
            shop.set("stock", "apple", ["boom"], {"store": "north"})
            with pytest.raises(StreamDisconnectedError, match="the count is not a number"):
                await anext(events)
        assert not node.hub.has_stream(stream)
        await eventually(lambda: shop.live_count("stock") == 0, within=5)
        # The shared state was not touched; the catalog still serves.
        assert await client.snapshot("catalog") == []


async def test_clients_cannot_write_an_external_collection() -> None:
    shop = Shop()
    async with running(make_shop_service(shop), CONFIG) as node:
        (name,) = node.hub.engine.externals.names("shared")
        version = node.hub.engine.version
        async with httpx.AsyncClient(base_url=node.url) as http:
            reply = await http.patch(f"/v1/inputs/{name}", json=[["x", [1]]])
        assert reply.status_code == 404
        assert node.hub.engine.version == version
