"""One proxy for several services of one Redis (a Redis Cluster's services, say): each under
`/<service>/...`, with its own membership, registry and nodes; the root answers health for all
of them. Named on the command line, or every service found in Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from proxy import ProxyConfig, ProxyConfigError
from tests.proxy.nodes import node_factory, proxy_config, running_proxy
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def two_services(
    redis_client: Redis, keyspace: Keyspace
) -> AsyncIterator[tuple[Keyspace, Keyspace, Any, Any]]:
    other = Keyspace(f"{keyspace.service}-b")
    async with node_factory(redis_client, keyspace) as start_a:
        async with node_factory(redis_client, other) as start_b:
            yield keyspace, other, start_a, start_b


async def test_each_service_under_its_prefix(
    redis_url: str, two_services: tuple[Keyspace, Keyspace, Any, Any]
) -> None:
    a, b, start_a, start_b = two_services
    node_a = await start_a("f-a")
    node_b = await start_b("f-b")
    config = proxy_config(redis_url, a, service=None, services=(a.service, b.service))
    async with running_proxy(config) as proxy:
        for gateway in proxy.gateways.values():
            await gateway.membership.wait_for(lambda c: len(c.nodes) == 1, 3.0)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            health = await http.get("/healthz")
            assert health.status_code == 200
            assert set(health.json()["services"]) == {a.service, b.service}
            node_b.hub.apply({"votes": [["only-b", [{"post": 7, "user": "x"}]]]})
            # The same route, one service's nodes each.
            top_a = (await http.post(f"/{a.service}/v1/snapshot/top", json={})).json()
            top_b = (await http.post(f"/{b.service}/v1/snapshot/top", json={})).json()
            assert [7, [1]] in top_b and [7, [1]] not in top_a
            created = await http.post(f"/{b.service}/v1/streams/top", json={})
            assert created.status_code == 201
            assert node_b.hub.has_stream(created.text) and not node_a.hub.has_stream(created.text)
            headers = {"Accept": "text/event-stream"}
            path = f"/{b.service}/v1/streams/{created.text}"
            async with http.stream("GET", path, headers=headers) as sse:
                assert sse.status_code == 200
                assert await anext(sse.aiter_lines()) == "event: init"
            # Another service's prefix does not reach that stream.
            other = await http.get(f"/{a.service}/v1/streams/{created.text}", headers=headers)
            assert other.status_code == 404
            # Unprefixed routes say how to address a service.
            plain = await http.post("/v1/snapshot/top", json={})
            assert plain.status_code == 404 and "/<service>/v1/snapshot/top" in plain.text
            assert (await http.get(f"/{b.service}/healthz")).json()["serving"] == 1


async def test_every_service_in_redis_when_none_is_named(
    redis_server_factory: ServerFactory,
) -> None:
    server = await redis_server_factory()
    redis = Redis.from_url(server.url)
    try:
        async with AsyncExitStack() as stack:
            names = ("shop", "blog")
            for name in names:
                start = await stack.enter_async_context(node_factory(redis, Keyspace(name)))
                await start("f-1")
            base = proxy_config(server.url, Keyspace("shop"))
            async with running_proxy(dataclasses.replace(base, service=None)) as proxy:
                assert set(proxy.gateways) == set(names)
                async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
                    for name in names:
                        reply = await http.post(f"/{name}/v1/snapshot/top", json={})
                        assert reply.status_code == 200, reply.text
    finally:
        await redis.aclose()


def test_services_are_checked(redis_url: str, keyspace: Keyspace) -> None:
    with pytest.raises(ProxyConfigError, match="not both"):
        ProxyConfig(redis_url=redis_url, service="a", services=("b", "c"))
    with pytest.raises(ProxyConfigError, match="twice"):
        ProxyConfig(redis_url=redis_url, services=("b", "b"))
