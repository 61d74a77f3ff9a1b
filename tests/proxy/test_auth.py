"""Identity tokens through the proxy: verified there and at the node, a stream is its creator's
(also after a re-homing), writes need a scope, and the token reaches neither Redis nor a log."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from broker import ServeConfig
from broker.store.codec import LeaseRecord
from broker.store.keyspace import Keyspace
from broker.store.rate_limit import RateLimit
from proxy import ProxyConfig, RunningProxy
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import TestNode, proxy_config, running_proxy, until_serving
from tests.support.auth_services import make_auth_service
from tests.support.tokens import hs_config, hs_token, writer

pytestmark = pytest.mark.timeout(30)

CONTROL = "control-token-of-the-proxy-auth-tests"
SSE = {"Accept": "text/event-stream"}
NODE = ServeConfig(port=0, shutdown_timeout_s=1, control_token=CONTROL, jwt=hs_config())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def config(redis_url: str, keyspace: Keyspace) -> ProxyConfig:
    return proxy_config(redis_url, keyspace, control_token=CONTROL, jwt=hs_config())


@pytest.fixture
async def proxy(config: ProxyConfig, start_node: StartNode) -> AsyncIterator[RunningProxy]:
    async with running_proxy(config, access_log=True) as running:
        yield running


@pytest.fixture
async def nodes(
    proxy: RunningProxy, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> dict[str, TestNode]:
    service = make_auth_service()
    started = {
        name: await start_node(name, role=role, config=NODE, service=service)
        for name, role in (("lead", "leader"), ("f-0", "follower"), ("f-1", "follower"))
    }
    await redis_client.set(keyspace.lease, LeaseRecord(1, "lead/1-a").encode())
    found = await proxy.gateway.membership.wait_for(
        lambda c: len(c.nodes) == 3 and c.leader is not None, 3.0
    )
    assert found is not None
    return started


async def first_event(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> str:
    async with http.stream("GET", path, headers={**SSE, **headers}) as stream:
        if stream.status_code != 200:
            await stream.aread()
            return f"{stream.status_code} {stream.text}"
        text = ""
        async with asyncio.timeout(5):
            async for chunk in stream.aiter_text():
                text += chunk
                if "\n\n" in text:
                    return f"200 {text}"
    return f"200 {text}"


async def test_bad_tokens_are_refused_at_the_proxy(
    nodes: dict[str, TestNode], http: httpx.AsyncClient
) -> None:
    for token in ("garbage", hs_token(key="wrong-secret-wrong-secret-0123456789ab")):
        for method, path, body in (
            ("POST", "/v1/streams/public", {}),
            ("POST", "/v1/snapshot/mine", {}),
            ("PATCH", "/v1/inputs/notes", [["n", ["x"]]]),
        ):
            reply = await http.request(method, path, json=body, headers=bearer(token))
            assert reply.status_code == 401 and reply.json()["error"].startswith("invalid token")
    assert all(n.hub.stream_count == 0 for n in nodes.values())
    assert nodes["lead"].hub.engine.version == 0
    # Without a token, the node decides: public resources are open, others are not.
    assert (await http.post("/v1/snapshot/public", json={})).status_code == 200
    reply = await http.post("/v1/snapshot/mine", json={})
    assert reply.status_code == 401 and "not public" in reply.json()["error"]


async def test_claims_and_403_come_through(
    nodes: dict[str, TestNode], http: httpx.AsyncClient
) -> None:
    mine = await http.post("/v1/snapshot/mine", json={}, headers=bearer(hs_token("bob")))
    assert mine.json() == [["d2", ["bob's"]]]
    theirs = await http.post("/v1/snapshot/doc", json={"id": "d1"}, headers=bearer(hs_token("bob")))
    assert theirs.status_code == 403 and theirs.json() == {"error": "document 'd1' is not yours"}
    refused = await http.post("/v1/streams/doc", json={"id": "d1"}, headers=bearer(hs_token("bob")))
    assert refused.status_code == 403


async def test_writes_need_a_scope(nodes: dict[str, TestNode], http: httpx.AsyncClient) -> None:
    async def patch(headers: dict[str, str]) -> int:
        reply = await http.patch("/v1/inputs/notes", json=[["n", ["x"]]], headers=headers)
        return reply.status_code

    assert await patch({}) == 401
    assert await patch(bearer(hs_token("alice"))) == 403
    assert await patch(bearer(writer("alice", "notes"))) == 200
    assert await patch(bearer(CONTROL)) == 200
    assert nodes["lead"].hub.engine.version == 2


async def test_a_stream_is_its_creators_also_after_a_rehoming(
    nodes: dict[str, TestNode],
    http: httpx.AsyncClient,
    proxy: RunningProxy,
    redis_client: Redis,
    keyspace: Keyspace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice, bob = hs_token("alice"), hs_token("bob")
    created = await http.post("/v1/streams/mine", json={}, headers=bearer(alice))
    assert created.status_code == 201
    stream_id = created.text
    path = f"/v1/streams/{stream_id}"
    record = await proxy.gateway.streams._registry.get(stream_id)
    assert record is not None and record.owner == "alice"
    host = nodes[record.node_id]
    assert host.hub.owner_of(stream_id) == "alice"

    async def check_access(last: dict[str, str]) -> None:
        assert (await first_event(http, path, {**bearer(alice), **last})).startswith("200 ")
        with_query = await first_event(http, f"{path}?access_token={alice}", last)
        assert with_query.startswith("200 event: ")
        assert "alice's first" in with_query or last
        assert (await first_event(http, path, {**bearer(bob), **last})).startswith("404 ")
        assert (await first_event(http, f"{path}?access_token={bob}", last)).startswith("404 ")
        assert (await first_event(http, path, last)).startswith("401 ")

    await check_access({})
    await check_access({"Last-Event-ID": "run-1/0"})
    assert (await http.delete(path, headers=bearer(bob))).status_code == 404
    assert (await http.delete(path)).status_code == 401

    # Its follower dies: the stream moves, with its owner, and still only alice reads it.
    await host.crash()
    other = "f-1" if host.node_id == "f-0" else "f-0"
    await proxy.gateway.membership.wait_for(lambda c: record.node_id not in c.nodes, 3.0)
    assert (await first_event(http, path, {**bearer(bob), "Last-Event-ID": "run-1/0"})).startswith(
        "404 "
    )
    assert (await first_event(http, path, bearer(alice))).startswith("200 event: init")
    moved = await proxy.gateway.streams._registry.get(stream_id)
    assert moved is not None and moved.node_id == other and moved.owner == "alice"
    assert nodes[other].hub.owner_of(stream_id) == "alice"
    assert (await first_event(http, path, {**bearer(bob), "Last-Event-ID": "run-1/0"})).startswith(
        "404 "
    )
    assert (await http.delete(path, headers=bearer(bob))).status_code == 404
    assert (await http.delete(path, headers=bearer(alice))).status_code == 200
    assert not nodes[other].hub.has_stream(stream_id)

    # The token went to no Redis key and no log line.
    for key in await redis_client.keys(f"*{keyspace.service}*"):
        if await redis_client.type(key) == b"string":
            value = await redis_client.get(key)
            assert alice.encode() not in value and bob.encode() not in value
    # (httpx, the test's own client, logs the URLs it requests: not skiff's lines.)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("uvicorn", "skiff"))]
    assert any("access_token=[redacted]" in line for line in lines), lines
    assert not [line for line in lines if alice in line or bob in line]


async def test_anonymous_streams_of_public_resources(
    nodes: dict[str, TestNode], http: httpx.AsyncClient
) -> None:
    stream_id = (await http.post("/v1/streams/public", json={})).text
    assert (await first_event(http, f"/v1/streams/{stream_id}", {})).startswith("200 event: init")
    # A user's stream of a public resource is theirs.
    own = (await http.post("/v1/streams/public", json={}, headers=bearer(hs_token("carol")))).text
    assert (await first_event(http, f"/v1/streams/{own}", {})).startswith("401 ")


async def test_each_user_has_their_own_rate_limit_from_one_address(
    nodes: dict[str, TestNode], config: ProxyConfig
) -> None:
    # Three clients behind one address (one office's NAT): two users and the anonymous rest.
    tight = RateLimit(per_s=0.05, burst=3)
    async with running_proxy(dataclasses.replace(config, stream_rate=tight)) as proxy:
        await until_serving(proxy, 3)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:

            async def creations(headers: dict[str, str]) -> list[int]:
                return [
                    (await http.post("/v1/streams/public", json={}, headers=headers)).status_code
                    for _ in range(4)
                ]

            assert await creations(bearer(hs_token("alice"))) == [201] * 3 + [429]
            assert await creations(bearer(hs_token("bob"))) == [201] * 3 + [429]
            assert await creations({}) == [201] * 3 + [429]
            # A new token of alice's is still alice: her bucket is spent.
            assert await creations(bearer(hs_token("alice", ttl_s=600))) == [429] * 4
