"""A client reads its own writes through the proxy: a read relayed after a write carries the
write's version (`X-Skiff-After-Version`), and the follower that answers waits until it has
applied it (bounded: past the bound it answers with what it has)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from proxy import RunningProxy
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import set_leader, until_serving
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(30)


async def test_reads_after_a_write_wait_for_its_version(
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    lead = await start_node("lead-0", role="leader")
    follower = await start_node("f-0")
    await set_leader(redis_client, keyspace, "lead-0", 3)
    await until_serving(proxy, 2)
    # These nodes do not replicate: the test plays the replication, late.
    write = [["v9", vote(3, "zed")]]
    reply = await http.patch("/v1/inputs/votes", json=write)
    assert reply.json() == {"version": 1}
    assert (lead.hub.engine.version, follower.hub.engine.version) == (1, 0)

    async def replicate_later() -> None:
        await asyncio.sleep(0.3)
        follower.hub.apply({"votes": write})

    replication = asyncio.create_task(replicate_later())
    started = time.monotonic()
    snapshot = await http.post("/v1/snapshot/top", json={})
    assert time.monotonic() - started >= 0.25
    assert [3, [1]] in snapshot.json()
    await replication
    # Already applied: no wait; lookups and new streams carry the version too.
    lookup = await http.post("/v1/snapshot/top/lookup", json={"key": 3, "params": {}})
    assert lookup.json() == [1]
    assert (await http.post("/v1/streams/top", json={})).status_code == 201
    assert proxy.gateway.upstream.read_headers()["X-Skiff-After-Version"] == "1"


async def test_a_follower_that_never_catches_up_answers_after_the_bound(
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    await start_node("lead-0", role="leader")
    await start_node("f-0")
    await set_leader(redis_client, keyspace, "lead-0", 3)
    await until_serving(proxy, 2)
    await http.patch("/v1/inputs/votes", json=[["v9", vote(3, "zed")]])
    started = time.monotonic()
    snapshot = await http.post("/v1/snapshot/top", json={})
    waited = time.monotonic() - started
    assert snapshot.status_code == 200 and [3, [1]] not in snapshot.json()
    assert 1.8 <= waited < 5
