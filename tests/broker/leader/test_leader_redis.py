"""A leader when Redis misbehaves: data loss (FLUSHALL, a lost meta hash) and outages."""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import aclosing

import httpx
import pytest
from redis.asyncio import Redis

from broker import Init, SkiffClient, Update
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import (
    admin_state,
    candidate,
    deltas,
    leading,
    meta_of,
    patch,
    stream_versions,
)
from tests.support.leader_support import (
    events as events_of,
)
from tests.support.polling import eventually
from tests.support.redis_server import ServerFactory
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def service() -> Service:
    return dataclasses.replace(make_service(), name="flaky")


async def test_after_flushall_the_leader_republishes_its_state_under_a_new_epoch(
    redis_server_factory: ServerFactory, service: Service
) -> None:
    server = await redis_server_factory()
    keyspace = Keyspace(service.name)
    redis = Redis.from_url(server.url)
    try:
        async with candidate(server.url, service, "a") as a:
            lead = await leading(a)
            # A standby with the production grace: it must not start an empty keyspace first.
            async with candidate(server.url, service, "b", fresh_start_grace_s=1.5) as b:
                for i in range(3):
                    await patch(a.url or "", "votes", [[f"w{i}", vote(i, "u")]])
                before = await admin_state(a.url or "")
                old_epoch = lead.epoch
                async with SkiffClient(a.url or "") as client:
                    stream = await client.create_stream("top", {"limit": 5})
                    async with aclosing(events_of(client, stream)) as events:
                        first = await anext(events)
                        assert isinstance(first, Init) and first.run == old_epoch

                        await redis.flushall()
                        reinit = await asyncio.wait_for(anext(events), timeout=10)
                        assert isinstance(reinit, Init)
                        assert reinit.run != old_epoch and reinit.version == 3
                        assert reinit.entries == first.entries

                        meta = await meta_of(redis, keyspace)
                        assert (meta.epoch, meta.head, meta.snapshot) == (reinit.run, 3, 3)
                        assert a.leadership is lead and lead.epoch == meta.epoch
                        assert b.leadership is None
                        after = await admin_state(a.url or "")
                        assert after["checksums"] == before["checksums"]

                        response = await patch(a.url or "", "votes", [["w9", vote(1, "v")]])
                        assert response.json() == {"version": 4}
                        update = await anext(events)
                        assert isinstance(update, Update) and update.run == meta.epoch
                [delta] = await deltas(redis, keyspace)
                assert (delta.version, delta.epoch) == (4, meta.epoch)
                await asyncio.sleep(2)  # past the standby's grace: still one leader
                assert b.leadership is None and a.leadership is lead
    finally:
        await redis.aclose()


async def test_a_lost_meta_hash_is_republished_and_the_write_goes_through(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    service = dataclasses.replace(service, name=keyspace.service)
    async with candidate(redis_url, service, "a") as a:
        lead = await leading(a)
        await patch(a.url or "", "votes", [["w1", vote(1, "u")]])
        old_epoch = lead.epoch
        await redis_client.delete(keyspace.meta)
        response = await patch(a.url or "", "votes", [["w2", vote(2, "u")]])
        assert response.json() == {"version": 2}
        meta = await meta_of(redis_client, keyspace)
        assert meta.epoch != old_epoch and (meta.head, meta.snapshot) == (2, 1)
        assert await stream_versions(redis_client, keyspace.deltas) == [2]


async def test_a_redis_outage_refuses_writes_keeps_streams_and_resumes(
    redis_server_factory: ServerFactory, service: Service
) -> None:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    keyspace = Keyspace(service.name)
    async with candidate(server.url, service, "a") as a:
        lead = await leading(a)
        url = a.url or ""
        for i in range(3):
            assert (await patch(url, "votes", [[f"w{i}", vote(1, "u")]])).status_code == 200
        before = await admin_state(url)
        async with SkiffClient(url) as client, httpx.AsyncClient(base_url=url) as http:
            stream = await client.create_stream("top", {"limit": 5})
            async with aclosing(events_of(client, stream)) as events:
                assert isinstance(await anext(events), Init)
                await server.stop()

                async def unhealthy() -> bool:
                    response = await http.get("/healthz")
                    return response.status_code == 503 and response.json()["error"] == (
                        "redis unreachable"
                    )

                await eventually(unhealthy, within=10)
                refused = await patch(url, "votes", [["lost", vote(2, "x")]])
                assert refused.status_code == 503, refused.text
                assert lead.engine.version == 3
                # Reads are served from memory, and the stream stays open.
                assert (await http.post("/v1/snapshot/top", json={"limit": 5})).status_code == 200
                assert (await admin_state(url)) == before
                assert a.leadership is lead and lead.hub is not None
                assert lead.hub.reader_count == 1

                await server.start()
                await eventually(lambda: _ok(http), within=15)
                resumed = await patch(url, "votes", [["w3", vote(2, "u")]])
                assert resumed.json() == {"version": 4}
                update = await asyncio.wait_for(anext(events), timeout=5)
                assert isinstance(update, Update) and update.version == 4
    redis = Redis.from_url(server.url)
    try:
        assert await stream_versions(redis, keyspace.deltas) == [1, 2, 3, 4]
        assert await stream_versions(redis, keyspace.inputs) == [1, 2, 3, 4]
    finally:
        await redis.aclose()


async def _ok(http: httpx.AsyncClient) -> bool:
    return (await http.get("/healthz")).status_code == 200
