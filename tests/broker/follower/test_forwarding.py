"""Writes on a follower are forwarded to the leader found through the lease and its heartbeat."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker import ServeConfig
from broker.cluster.locator import LeaderAddress, LeaderLocator
from broker.follower.forwarding import FORWARDED_HEADER
from broker.follower.node import FollowerNode, follower_node
from broker.store.codec import holder_node
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from graph import Service
from tests.support.polling import eventually
from tests.support.scripted_leader import ScriptedLeader, now_ms

pytestmark = pytest.mark.timeout(30)

HOLDER = "lead-0/4121-a1b2c3"


@dataclass
class FakeLeader:
    """An HTTP server recording the writes it gets and answering `reply`."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    reply: tuple[int, bytes] = (200, b'{"version":7}')


@pytest.fixture
async def fake_leader() -> AsyncIterator[FakeLeader]:
    fake = FakeLeader()

    async def patch(request: Request) -> Response:
        fake.requests.append((request.url.path, dict(request.headers), await request.body()))
        status, body = fake.reply
        return Response(body, status_code=status, media_type="application/json")

    app = Starlette(routes=[Route("/v1/inputs/{collection}", patch, methods=["PATCH"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve([sock]))
    await eventually(lambda: server.started)
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield fake
    server.should_exit = True
    await task


@pytest.fixture
async def leader(redis_client: Redis, keyspace: Keyspace, service: Service) -> ScriptedLeader:
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.lead(HOLDER)
    await leader.start_epoch()
    return leader


async def announce(redis: Redis, keyspace: Keyspace, url: str | None, node: str = "lead-0") -> None:
    record = NodeRecord(node, "leader", "e", 0, now_ms(), 0, True, url)
    await redis.set(keyspace.node(node), record.encode(), px=10_000)


@pytest.fixture
async def follower(
    leader: ScriptedLeader, redis_url: str, service: Service
) -> AsyncIterator[FollowerNode]:
    config = ServeConfig(port=0, max_body_bytes=200, shutdown_timeout_s=1)
    async with follower_node(service, config, redis_url=redis_url, node_id="f-1") as node:
        yield node


async def patch(url: str, body: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.patch(url + "/v1/inputs/votes", content=body, headers=headers)


def test_holder_node() -> None:
    assert holder_node("lead-0/4121-a1b2c3") == "lead-0"
    assert holder_node("a/b/1-x") == "a/b"
    assert holder_node("plain") == "plain"


async def test_write_and_headers_pass_through_both_ways(
    follower: FollowerNode, fake_leader: FakeLeader, redis_client: Redis, keyspace: Keyspace
) -> None:
    await announce(redis_client, keyspace, fake_leader.url)
    body = b'[["v9", [{"post": 1, "user": "zed"}]]]'
    reply = await patch(
        follower.url, body, **{"Idempotency-Key": "k-1", "Authorization": "Bearer s3cret",
                               "Content-Type": "application/json"},
    )  # fmt: skip
    assert (reply.status_code, reply.json()) == (200, {"version": 7})
    [(path, headers, sent)] = fake_leader.requests
    assert (path, sent) == ("/v1/inputs/votes", body)
    assert headers["idempotency-key"] == "k-1"
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["content-type"] == "application/json"
    assert headers[FORWARDED_HEADER] == "f-1"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (422, b'{"error":"mapper VotesByPost raised on key v9"}'),
        (400, b'{"error":"malformed JSON"}'),
        (401, b'{"error":"missing or invalid control token"}'),
        (503, b'{"error":"not the leader; leader is lead-1 at http://x"}'),
    ],
)
async def test_the_leaders_answer_comes_back_unchanged(
    follower: FollowerNode, fake_leader: FakeLeader, redis_client: Redis, keyspace: Keyspace,
    status: int, body: bytes,
) -> None:  # fmt: skip
    await announce(redis_client, keyspace, fake_leader.url)
    fake_leader.reply = (status, body)
    reply = await patch(follower.url, b"[]")
    assert (reply.status_code, reply.content) == (status, body)


async def test_no_leader(follower: FollowerNode, leader: ScriptedLeader) -> None:
    await leader.resign()
    reply = await patch(follower.url, b"[]")
    assert (reply.status_code, reply.json()) == (503, {"error": "no leader"})


async def test_a_leader_without_an_address(
    follower: FollowerNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    reply = await patch(follower.url, b"[]")
    assert reply.status_code == 503
    assert reply.json()["error"] == "no leader: lead-0 has no known address"
    await announce(redis_client, keyspace, None)
    assert (await patch(follower.url, b"[]")).status_code == 503


async def test_an_unreachable_leader(
    follower: FollowerNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening
        await announce(redis_client, keyspace, dead)
        reply = await patch(follower.url, b"[]")
    assert reply.status_code == 503
    assert reply.json()["error"] == f"leader lead-0 at {dead} is unreachable"


async def test_checked_locally_before_forwarding(
    leader: ScriptedLeader, redis_url: str, service: Service, fake_leader: FakeLeader,
    redis_client: Redis, keyspace: Keyspace,
) -> None:  # fmt: skip
    await announce(redis_client, keyspace, fake_leader.url)
    config = ServeConfig(port=0, max_body_bytes=50, control_token="tok", shutdown_timeout_s=1)
    async with follower_node(service, config, redis_url=redis_url, node_id="f-2") as node:
        auth = {"Authorization": "Bearer tok"}
        assert (await patch(node.url, b"[]")).status_code == 401
        assert (await patch(node.url, b"[]", Authorization="Bearer nope")).status_code == 401
        async with httpx.AsyncClient() as http:
            missing = await http.patch(node.url + "/v1/inputs/scores", content=b"[]", headers=auth)
        # `scores` is shared, not an input: only the leader's inputs take writes.
        assert missing.status_code == 404
        big = await patch(node.url, b"[" + b" " * 100 + b"]", **auth)
        assert big.status_code == 413
        looped = await patch(node.url, b"[]", **auth, **{FORWARDED_HEADER: "f-9"})
        assert looped.status_code == 503
        assert fake_leader.requests == []
        ok = await patch(node.url, b"[]", **auth)
        assert ok.status_code == 200
        assert fake_leader.requests[0][1]["authorization"] == "Bearer tok"


async def test_in_process_write_is_forwarded_too(
    follower: FollowerNode, fake_leader: FakeLeader, redis_client: Redis, keyspace: Keyspace
) -> None:
    await announce(redis_client, keyspace, fake_leader.url)
    assert await follower.role.write("votes", [["v1", []]], "idem-2") == 7
    [(_, headers, body)] = fake_leader.requests
    assert (body, headers["idempotency-key"]) == (b'[["v1",[]]]', "idem-2")


async def test_locator_caches_only_a_known_address(
    redis_client: Redis, keyspace: Keyspace, leader: ScriptedLeader
) -> None:
    locator = LeaderLocator(redis_client, keyspace, cache_s=60)
    term = leader.writer.lease.token if leader.writer else None

    async def found() -> Any:
        return await locator.leader()

    assert await found() == LeaderAddress("lead-0", term, None)  # type: ignore[arg-type]
    await announce(redis_client, keyspace, "http://a")
    assert await found() == LeaderAddress("lead-0", term, "http://a")  # type: ignore[arg-type]
    await announce(redis_client, keyspace, "http://b")
    assert (await found()).url == "http://a"
    locator.forget()
    assert (await found()).url == "http://b"
