"""The control token, at the proxy and at the nodes: 401 and no state change without it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from broker import ServeConfig
from broker.store.codec import LeaseRecord
from broker.store.keyspace import Keyspace
from proxy import ProxyConfig, RunningProxy
from proxy.stream_ids import mint
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import TestNode, proxy_config, running_proxy
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(20)

TOKEN = "correct-horse-battery-staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SSE = {"Accept": "text/event-stream"}
NODE_CONFIG = ServeConfig(port=0, shutdown_timeout_s=1, control_token=TOKEN)


@pytest.fixture
def config(redis_url: str, keyspace: Keyspace) -> ProxyConfig:
    return proxy_config(redis_url, keyspace, control_token=TOKEN)


@pytest.fixture
async def cluster(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> AsyncIterator[tuple[TestNode, TestNode]]:
    lead = await start_node("lead-0", role="leader", config=NODE_CONFIG)
    follower = await start_node("f-0", config=NODE_CONFIG)
    await redis_client.set(keyspace.lease, LeaseRecord(1, "lead-0/1-a").encode())
    found = await proxy.gateway.membership.wait_for(
        lambda c: len(c.nodes) == 2 and c.leader is not None, 3.0
    )
    assert found is not None
    yield lead, follower


async def test_writes_need_the_token_and_change_nothing_without_it(
    cluster: tuple[TestNode, TestNode], http: httpx.AsyncClient
) -> None:
    lead, _ = cluster
    body = [["v9", vote(1, "mallory")]]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
        response = await http.patch("/v1/inputs/votes", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"error": "missing or invalid control token"}
    assert lead.hub.engine.version == 0
    response = await http.patch("/v1/inputs/votes", json=body, headers=AUTH)
    assert response.status_code == 200 and lead.hub.engine.version == 1


async def test_deletes_need_the_token(
    cluster: tuple[TestNode, TestNode], http: httpx.AsyncClient
) -> None:
    _, follower = cluster
    # Creating a stream needs no token from the client; the proxy names it with its own.
    stream_id = (await http.post("/v1/streams/top", json={})).text
    assert follower.hub.has_stream(stream_id)
    assert (await http.delete(f"/v1/streams/{stream_id}")).status_code == 401
    assert follower.hub.has_stream(stream_id)
    assert (await http.delete(f"/v1/streams/{stream_id}", headers=AUTH)).status_code == 200
    assert not follower.hub.has_stream(stream_id)


async def test_admin_needs_the_token(
    cluster: tuple[TestNode, TestNode], http: httpx.AsyncClient
) -> None:
    assert (await http.get("/v1/admin/nodes")).status_code == 401
    assert (await http.get("/v1/admin/nodes", headers=AUTH)).status_code == 200
    # Reads stay open.
    assert (await http.post("/v1/snapshot/top", json={})).status_code == 200
    assert (await http.get("/healthz")).status_code == 200


async def test_nodes_refuse_a_chosen_stream_id_without_the_token(
    cluster: tuple[TestNode, TestNode],
) -> None:
    _, follower = cluster
    chosen = mint("f-0")
    async with httpx.AsyncClient(base_url=follower.url) as node:
        headers = {"X-Skiff-Stream-Id": chosen}
        assert (await node.post("/v1/streams/top", json={}, headers=headers)).status_code == 401
        assert not follower.hub.has_stream(chosen)
        response = await node.post("/v1/streams/top", json={}, headers={**headers, **AUTH})
        assert response.status_code == 201 and response.text == chosen


async def test_the_token_is_never_logged(
    redis_url: str,
    keyspace: Keyspace,
    start_node: StartNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    await start_node("f-0", config=NODE_CONFIG)
    config = proxy_config(redis_url, keyspace, control_token=TOKEN)
    async with running_proxy(config) as proxy, httpx.AsyncClient(base_url=proxy.url) as http:
        await proxy.gateway.membership.wait_for(lambda c: bool(c.nodes), 3.0)
        await http.post("/v1/streams/top", json={})
        await http.patch("/v1/inputs/votes", json=[], headers={"Authorization": "Bearer nope"})
        await http.get("/v1/admin/nodes", headers=AUTH)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(config) and TOKEN not in repr(NODE_CONFIG)


async def test_proxy_only_reaches_registered_nodes(
    cluster: tuple[TestNode, TestNode], http: httpx.AsyncClient
) -> None:
    # An id naming an unregistered host is refused without any connection attempt; a path
    # cannot smuggle another host or a second segment either.
    for stream_id in (mint("evil.example.com"), mint("localhost")):
        response = await http.get(f"/v1/streams/{stream_id}", headers=SSE)
        assert response.status_code == 404
    response = await http.post("/v1/streams/top%2F..%2F..%2Fadmin", json={})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "method, path", [("PATCH", "/v1/inputs/votes"), ("POST", "/v1/streams/top")]
)
async def test_a_body_that_never_finishes_gets_408_at_the_proxy(
    config: ProxyConfig, cluster: tuple[TestNode, TestNode], method: str, path: str
) -> None:
    lead, follower = cluster
    async with running_proxy(dataclasses.replace(config, body_timeout_s=0.5)) as slow:
        host, port = slow.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[[".encode()
        )
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 3.0)  # answered, then closed
        writer.close()
        assert data.startswith(b"HTTP/1.1 408 ") and time.monotonic() - started < 2.0
    assert lead.hub.engine.version == 0
    assert lead.hub.stream_count == 0 and follower.hub.stream_count == 0
