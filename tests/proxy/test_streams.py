"""Re-homing: a stream id outlives the follower that hosted it (never a 404 for that)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.asyncio import Redis

from broker.client import Init, SkiffClient, Update
from broker.store.keyspace import Keyspace
from proxy import RunningProxy
from proxy.cluster.registry import StreamRecord
from proxy.stream_ids import parse
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import proxy_config, running_proxy
from tests.support.helpers import vote
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(30)

SSE = {"Accept": "text/event-stream"}


async def members(proxy: RunningProxy, *node_ids: str) -> None:
    found = await proxy.gateway.membership.wait_for(lambda c: set(node_ids) <= set(c.nodes), 3.0)
    assert found is not None, f"{node_ids} did not join"


async def host_of(redis: Redis, keyspace: Keyspace, stream_id: str) -> str:
    return StreamRecord.decode(await redis.get(keyspace.stream(stream_id))).node_id


@pytest.mark.parametrize("departure", ["crash", "deregister"])
async def test_stream_moves_when_its_follower_is_gone(
    departure: str,
    proxy: RunningProxy,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    first = await start_node("f-0")
    await members(proxy, "f-0")
    async with SkiffClient(proxy.url) as client:
        stream_id = await client.create_stream("top", {"limit": 3})
        assert parse(stream_id).node_id == "f-0"
        second = await start_node("f-1")
        await members(proxy, "f-1")
        events = client.events(stream_id, backoff_s=0.02)
        init = await anext(events)
        assert isinstance(init, Init) and init.version == 0
        if departure == "crash":
            await first.crash()  # its record lingers until the TTL: connections are refused
        else:
            await first.stop()
        # The client reconnects with Last-Event-ID; the proxy re-homes the stream to f-1 under
        # the same id and the client goes on (here: nothing changed, an empty resume update).
        resumed = await asyncio.wait_for(anext(events), 5)
        assert isinstance(resumed, Init | Update) and resumed.run == init.run
        assert second.hub.has_stream(stream_id)
        assert await host_of(redis_client, keyspace, stream_id) == "f-1"
        second.hub.apply({"votes": [("v3", vote(3, "cy"))]})
        update = await asyncio.wait_for(anext(events), 5)
        assert update == Update(init.run, 1, [(3, [1])])
        await events.aclose()
    registry = proxy.gateway.metrics.registry
    assert registry.get_sample_value("skiff_proxy_rehomes_total") == 1


async def test_a_node_that_forgot_the_stream_recreates_it_in_place(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    node = await start_node("f-0")
    await members(proxy, "f-0")
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        stream_id = (await http.post("/v1/streams/top", json={})).text
        await start_node("f-1")
        await members(proxy, "f-1")
        # The node lost it (idle expiry, restart) while the registry still has it.
        node.hub.delete_stream(stream_id)
        async with http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response:
            assert response.status_code == 200
            assert (await anext(response.aiter_lines())) == "event: init"
        assert node.hub.has_stream(stream_id)
        assert await host_of(redis_client, keyspace, stream_id) == "f-0"


async def test_draining_follower_hands_its_streams_over(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    first = await start_node("f-0")
    await members(proxy, "f-0")
    async with SkiffClient(proxy.url) as client:
        stream_ids = [await client.create_stream("top", {"limit": n}) for n in (1, 2, 3)]
        second = await start_node("f-1")
        await members(proxy, "f-1")
        readers = [client.events(s, backoff_s=0.02) for s in stream_ids]
        for reader in readers:
            assert isinstance(await anext(reader), Init)
        assert first.running is not None
        first.running.drain()  # what SIGTERM does
        for reader in readers:
            resumed = await asyncio.wait_for(anext(reader), 5)
            assert isinstance(resumed, Init | Update)
        for stream_id in stream_ids:
            assert second.hub.has_stream(stream_id)
            assert await host_of(redis_client, keyspace, stream_id) == "f-1"
        # The drained node stopped serving by itself after its window.
        await asyncio.wait_for(first.running.wait_closed(), 5)
        for reader in readers:
            await reader.aclose()


async def test_two_proxies_rehoming_at_once_agree(
    redis_url: str, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    first = await start_node("f-0")
    config = proxy_config(redis_url, keyspace)
    async with running_proxy(config) as one, running_proxy(config) as two:
        await members(one, "f-0")
        async with httpx.AsyncClient(base_url=one.url) as http:
            stream_id = (await http.post("/v1/streams/top", json={})).text
        others = [await start_node("f-1"), await start_node("f-2")]
        await members(one, "f-1", "f-2")
        await members(two, "f-1", "f-2")
        await first.stop()

        async def read_init(proxy: RunningProxy) -> str:
            async with (
                httpx.AsyncClient(base_url=proxy.url) as http,
                http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response,
            ):
                assert response.status_code == 200
                return await anext(response.aiter_lines())

        assert await asyncio.gather(read_init(one), read_init(two)) == ["event: init"] * 2
        hosts = [n.node_id for n in others if n.hub.has_stream(stream_id)]
        assert len(hosts) == 1
        assert await host_of(redis_client, keyspace, stream_id) == hosts[0]


async def test_no_follower_left_is_503_never_404(
    proxy: RunningProxy, start_node: StartNode
) -> None:
    node = await start_node("f-0")
    await members(proxy, "f-0")
    async with httpx.AsyncClient(base_url=proxy.url) as http:
        stream_id = (await http.post("/v1/streams/top", json={})).text
        await node.stop()
        await eventually(lambda: "f-0" not in proxy.gateway.membership.cluster.nodes)
        response = await http.get(f"/v1/streams/{stream_id}", headers=SSE)
        assert response.status_code == 503
        assert "no ready follower" in response.json()["error"]


async def test_a_lone_leader_hosts_streams(proxy: RunningProxy, start_node: StartNode) -> None:
    lead = await start_node("lead-0", role="leader")
    await members(proxy, "lead-0")
    async with SkiffClient(proxy.url) as client:
        stream_id = await client.create_stream("top", {"limit": 1})
        assert parse(stream_id).node_id == "lead-0" and lead.hub.has_stream(stream_id)
        events = client.events(stream_id, reconnect=False)
        assert isinstance(await anext(events), Init)
        await events.aclose()


async def test_a_stream_from_a_node_that_left_silently_ends_so_the_client_reconnects(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    # A node cut off the network keeps its connections half-open: nothing more arrives, and
    # nothing closes. Once membership drops the node, the proxy ends the relay itself.
    node = await start_node("f-0")
    await members(proxy, "f-0")
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
        stream_id = (await http.post("/v1/streams/top", json={})).text
        async with http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response:
            chunks = response.aiter_raw()
            assert b"event: init" in await anext(chunks)
            # What a partition looks like from Redis: the heartbeats stop and the record goes,
            # while the node itself stays up with the connection open.
            await node._stop_beating()
            await redis_client.delete(keyspace.node("f-0"))
            await redis_client.zrem(keyspace.nodes, "f-0")

            async def drain() -> None:
                async for _ in chunks:
                    pass

            # The relay ends well before any heartbeat (30 s) would have been due.
            await asyncio.wait_for(drain(), 5)


async def test_a_rehomed_stream_is_found_after_its_registry_record_is_lost(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    # After a FLUSHALL the registry is gone; a stream re-homed to a node its id does not name
    # must still be found (the proxy asks the other hosts), not answer 404.
    first = await start_node("f-0")
    await members(proxy, "f-0")
    async with SkiffClient(proxy.url) as client:
        stream_id = await client.create_stream("top", {"limit": 3})
        second = await start_node("f-1")
        await members(proxy, "f-1")
        await first.stop()
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            async with http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response:
                assert response.status_code == 200  # re-homed to f-1 under the same id
            assert second.hub.has_stream(stream_id)
            await redis_client.delete(keyspace.stream(stream_id))
            async with http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response:
                assert response.status_code == 200
                assert b"event: init" in await anext(response.aiter_raw())
