"""The proxy's routes in front of real nodes (uvicorn on 127.0.0.1, announced in Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from broker.client import SkiffClient
from broker.store.codec import LeaseRecord
from broker.store.keyspace import Keyspace
from proxy import RunningProxy
from proxy.cluster.registry import StreamRecord
from proxy.stream_ids import mint, parse
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import proxy_config, running_proxy, until_serving
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(20)

SSE = {"Accept": "text/event-stream"}


async def next_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    async for chunk in chunks:
        if chunk:
            return chunk
    raise AssertionError("the stream ended")


async def test_health_and_metrics(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"] == "no ready node"
    await start_node("f-0")
    await until_serving(proxy, 1)
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "role": "proxy", "nodes": 1, "serving": 1, "leader": None
    }  # fmt: skip
    assert (await http.get("/v1/healthcheck")).status_code == 200
    metrics = (await http.get("/metrics")).text
    assert 'skiff_proxy_nodes{role="follower",state="serving"} 1.0' in metrics
    assert 'skiff_proxy_requests_total{route="/healthz",status="200"} 1.0' in metrics


async def test_create_registers_the_stream_on_a_follower(
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    lead = await start_node("lead-0", role="leader")
    follower = await start_node("f-0")
    await until_serving(proxy, 2)
    response = await http.post("/v1/streams/top", json={"limit": 2})
    assert response.status_code == 201
    stream_id = response.text
    assert parse(stream_id).node_id == "f-0"  # followers host streams, not the leader
    assert follower.hub.has_stream(stream_id) and not lead.hub.has_stream(stream_id)
    raw = await redis_client.get(keyspace.stream(stream_id))
    record = StreamRecord.decode(raw)
    assert (record.resource, record.params, record.node_id) == ("top", {"limit": 2}, "f-0")
    assert 0 < await redis_client.pttl(keyspace.stream(stream_id)) <= 30_000
    # The node's own answers are relayed: unknown resource, rejected params, bad JSON.
    assert (await http.post("/v1/streams/nope", json={})).status_code == 404
    assert (await http.post("/v1/streams/top", json={"limit": -1})).status_code == 400
    malformed = await http.post("/v1/streams/top", content=b"{")
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["error"]
    timed = proxy.gateway.metrics.registry.get_sample_value(
        "skiff_proxy_upstream_seconds_count", {"method": "POST"}
    )
    assert timed == 3


async def test_identical_streams_share_a_follower_others_spread(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    nodes = [await start_node(f"f-{i}") for i in range(3)]
    await until_serving(proxy, 3)
    same = [(await http.post("/v1/streams/top", json={"limit": 1})).text for _ in range(5)]
    assert len({parse(s).node_id for s in same}) == 1
    host = next(n for n in nodes if n.node_id == parse(same[0]).node_id)
    assert host.hub.instance_count == 1 and host.hub.stream_count == 5
    # Other instances go to the least loaded followers: not the one holding five streams.
    others = [(await http.post("/v1/streams/top", json={"limit": n})).text for n in (2, 3)]
    assert {parse(s).node_id for s in others}.isdisjoint({host.node_id})
    assert len({parse(s).node_id for s in others}) == 2


async def test_full_followers_refuse_new_instances(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0", capacity=1)
    await until_serving(proxy, 1)
    assert (await http.post("/v1/streams/top", json={"limit": 1})).status_code == 201
    await proxy.gateway.membership.wait_for(lambda c: c.nodes["f-0"].streams == 1, 2.0)
    response = await http.post("/v1/streams/top", json={"limit": 2})
    assert response.status_code == 503
    assert "capacity" in response.json()["error"]


async def test_stream_bytes_pass_through_unchanged(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    node = await start_node("f-0")
    await until_serving(proxy, 1)
    via_proxy = (await http.post("/v1/streams/top", json={"limit": 2})).text
    direct = node.hub.create_stream("top", {"limit": 2})  # the same instance
    async with (
        httpx.AsyncClient(base_url=node.url) as node_http,
        http.stream("GET", f"/v1/streams/{via_proxy}", headers=SSE) as proxied,
        node_http.stream("GET", f"/v1/streams/{direct}", headers=SSE) as original,
    ):
        assert proxied.status_code == 200
        assert proxied.headers["content-type"].startswith("text/event-stream")
        assert proxied.headers["x-accel-buffering"] == "no"
        proxied_chunks, original_chunks = proxied.aiter_raw(), original.aiter_raw()
        assert await next_chunk(proxied_chunks) == await next_chunk(original_chunks)
        node.hub.apply({"votes": [("v9", vote(2, "zed"))]})
        # Each event is flushed on its own: it arrives while the stream stays open.
        update = await asyncio.wait_for(next_chunk(proxied_chunks), 2)
        assert update == await next_chunk(original_chunks)
        assert update.startswith(b"event: update\nid: run-1/1\n")
    metrics = (await http.get("/metrics")).text
    assert 'skiff_proxy_requests_total{route="/v1/streams/{stream_id}",status="200"} 1.0' in metrics


async def test_last_event_id_is_passed_through(proxy: RunningProxy, start_node: StartNode) -> None:
    node = await start_node("f-0")
    await until_serving(proxy, 1)
    async with SkiffClient(proxy.url) as client:
        stream_id = await client.create_stream("top", {"limit": 3})
        events = client.events(stream_id, reconnect=False)
        init = await anext(events)
        assert init.version == 0
        await events.aclose()
        node.hub.apply({"votes": [("v3", vote(2, "cy"))]})
        resumed = client.events(stream_id, last_event_id=init.event_id, reconnect=False)
        first = await anext(resumed)
        # A resume: one update with what changed since version 0, not a fresh init.
        assert type(first).__name__ == "Update"
        assert (first.version, first.entries) == (1, [(2, [2])])
        await resumed.aclose()


async def test_stream_errors(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0")
    await until_serving(proxy, 1)
    stream_id = (await http.post("/v1/streams/top", json={})).text
    json_only = {"Accept": "application/json"}
    assert (await http.get(f"/v1/streams/{stream_id}", headers=json_only)).status_code == 406
    # Skip's rule: no Accept header, */* and text/* are served (a stream: the first line).
    for accept in ("", "*/*", "text/*"):
        async with http.stream(
            "GET", f"/v1/streams/{stream_id}", headers={"Accept": accept}
        ) as sse:
            assert sse.status_code == 200, accept
            assert (await anext(sse.aiter_lines())).startswith("event: ")
    for unknown in ("not-an-id", mint("f-0"), mint("nobody"), "f-0.AAAAAAAAAAAAAAAAAAAAAB"):
        response = await http.get(f"/v1/streams/{unknown}", headers=SSE)
        assert response.status_code == 404, unknown
        assert "error" in response.json()
    assert (await http.get("/v1/nowhere")).status_code == 404
    assert (await http.put("/v1/streams/top")).status_code == 405


async def test_delete_removes_the_stream_everywhere(
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    node = await start_node("f-0")
    await until_serving(proxy, 1)
    stream_id = (await http.post("/v1/streams/top", json={})).text
    assert (await http.delete(f"/v1/streams/{stream_id}")).status_code == 200
    assert not node.hub.has_stream(stream_id)
    assert not await redis_client.exists(keyspace.stream(stream_id))
    assert (await http.get(f"/v1/streams/{stream_id}", headers=SSE)).status_code == 404
    assert (await http.delete(f"/v1/streams/{stream_id}")).status_code == 404


async def test_reads_go_to_a_follower(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    lead = await start_node("lead-0", role="leader")
    follower = await start_node("f-0")
    await until_serving(proxy, 2)
    follower.hub.apply({"votes": [("v7", vote(3, "x"))]})  # only the follower sees this one
    snapshot = await http.post("/v1/snapshot/top", json={"limit": 5})
    assert snapshot.status_code == 200
    assert snapshot.json() == [[1, [1]], [2, [1]], [3, [1]]]
    lookup = await http.post("/v1/snapshot/top/lookup", json={"key": 3, "params": {"limit": 5}})
    assert lookup.json() == [1]
    assert lead.hub.engine.version == 0
    assert (await http.post("/v1/snapshot/nope", json={})).status_code == 404


async def test_writes_go_to_the_lease_holder(
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    lead = await start_node("lead-0", role="leader")
    follower = await start_node("f-0")
    await redis_client.set(keyspace.lease, LeaseRecord(3, "lead-0/1-abc").encode())
    await until_serving(proxy, 2)
    response = await http.patch("/v1/inputs/votes", json=[["v5", vote(1, "q")]])
    assert response.status_code == 200 and response.json() == {"version": 1}
    assert (lead.hub.engine.version, follower.hub.engine.version) == (1, 0)
    bad = await http.patch("/v1/inputs/nope", json=[])
    assert bad.status_code == 404


async def test_body_size_limit(redis_url: str, keyspace: Keyspace, start_node: StartNode) -> None:
    await start_node("f-0")
    async with (
        running_proxy(proxy_config(redis_url, keyspace, max_body_bytes=64)) as proxy,
        httpx.AsyncClient(base_url=proxy.url) as http,
    ):
        await until_serving(proxy, 1)
        big = {"limit": 1, "pad": "x" * 100}
        for method, path in [("POST", "/v1/streams/top"), ("PATCH", "/v1/inputs/votes"),
                             ("POST", "/v1/snapshot/top")]:  # fmt: skip
            response = await http.request(method, path, json=big)
            assert response.status_code == 413, path
            assert "exceeds 64 bytes" in response.json()["error"]


async def test_cors_from_configuration(
    redis_url: str, keyspace: Keyspace, start_node: StartNode
) -> None:
    await start_node("f-0")
    config = proxy_config(redis_url, keyspace, cors_origins=("https://app.example",))
    async with running_proxy(config) as proxy, httpx.AsyncClient(base_url=proxy.url) as http:
        preflight = await http.options(
            "/v1/inputs/votes",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        other = await http.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        await until_serving(proxy, 1)
        # Stream reads skip the middleware stack (proxy.app.ProxyApp) yet follow its rules.
        stream_id = (await http.post("/v1/streams/top", json={"limit": 1})).text
        for origin, allowed in (("https://app.example", True), ("https://evil.example", False)):
            headers = {**SSE, "Origin": origin}
            async with http.stream("GET", f"/v1/streams/{stream_id}", headers=headers) as sse:
                assert sse.status_code == 200
                got = sse.headers.get("access-control-allow-origin")
                assert got == (origin if allowed else None)
        missing = await http.get("/v1/streams/nosuchnode.AAAA", headers={"Origin": origin})
        assert missing.status_code in (404, 406)
        assert "access-control-allow-origin" not in missing.headers
        missing = await http.get(
            "/v1/streams/nosuchnode.AAAA", headers={**SSE, "Origin": "https://app.example"}
        )
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == "https://app.example"
    # Without configured origins, no CORS headers at all.
    async with (
        running_proxy(proxy_config(redis_url, keyspace)) as proxy,
        httpx.AsyncClient(base_url=proxy.url) as http,
    ):
        response = await http.get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in response.headers


async def test_admin_nodes_view(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0")
    await until_serving(proxy, 1)
    body = (await http.get("/v1/admin/nodes")).json()
    assert [n["node_id"] for n in body["nodes"]] == ["f-0"]
    assert body["nodes"][0]["serving"] is True
