"""Writes through the proxy: to the lease holder, retried once across a leader change."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from redis.asyncio import Redis

from broker.cluster.heartbeat import Heartbeat
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from proxy import RunningProxy
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import set_leader, until_leader
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(30)

WRITE = [["v9", vote(1, "q")]]
FakeLeader = Callable[[str, bytes | None], Awaitable[str]]


def retries(proxy: RunningProxy) -> float | None:
    return proxy.gateway.metrics.registry.get_sample_value("skiff_proxy_write_retries_total")


@pytest.fixture
async def fake_leader(redis_client: Redis, keyspace: Keyspace) -> AsyncIterator[FakeLeader]:
    """`await fake_leader(node_id, reply)`: a node registered as leader that reads a request and
    answers `reply` raw (None: closes the connection without a word)."""
    servers: list[asyncio.Server] = []
    beats: list[Heartbeat] = []

    async def start(node_id: str, reply: bytes | None) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            if reply is not None:
                writer.write(reply)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        record = NodeRecord(node_id, "leader", "run-1", 0, 0, 0, True, url)
        beat = Heartbeat(redis_client, keyspace, node_id, lambda: record, interval_s=0.1,
                         ttl_ms=5_000)  # fmt: skip
        await beat.beat()
        beats.append(beat)
        return url

    yield start
    for beat in beats:
        await beat.deregister()
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("key", [None, "write-1"])
async def test_refused_write_is_retried_on_the_new_leader(
    key: str | None,
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    old = await start_node("lead-0", role="leader")
    new = await start_node("lead-1", role="leader")
    await set_leader(redis_client, keyspace, "lead-0", 1)
    await until_leader(proxy, "lead-0")
    await old.crash()  # connections refused: nothing was sent, safe to resend even without key

    async def takeover() -> None:
        await asyncio.sleep(0.3)
        await set_leader(redis_client, keyspace, "lead-1", 2)

    headers = {"Idempotency-Key": key} if key else {}
    response, _ = await asyncio.gather(
        http.patch("/v1/inputs/votes", json=WRITE, headers=headers), takeover()
    )
    assert response.status_code == 200, response.text
    assert new.hub.engine.version == 1
    assert retries(proxy) == 1


@pytest.mark.parametrize(
    ("reply", "key", "status"),
    [
        # A standby that lost the lease: not applied. Keyed writes go to the new leader...
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
         b"content-length: 27\r\n\r\n{\"error\": \"not the leader\"}", "k-1", 200),
        # ...a write without a key gets the node's own answer.
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
         b"content-length: 27\r\n\r\n{\"error\": \"not the leader\"}", None, 503),
        # The connection died mid-request: the write may have landed. Only a key makes it safe.
        (None, "k-2", 200),
        (None, None, 502),
    ],
)  # fmt: skip
async def test_uncertain_writes_are_only_retried_with_a_key(
    reply: bytes | None,
    key: str | None,
    status: int,
    proxy: RunningProxy,
    http: httpx.AsyncClient,
    start_node: StartNode,
    fake_leader: FakeLeader,
    redis_client: Redis,
    keyspace: Keyspace,
) -> None:
    await fake_leader("lead-0", reply)
    new = await start_node("lead-1", role="leader")
    await set_leader(redis_client, keyspace, "lead-0", 1)
    await until_leader(proxy, "lead-0")

    async def takeover() -> None:
        await asyncio.sleep(0.3)
        await set_leader(redis_client, keyspace, "lead-1", 2)

    headers = {"Idempotency-Key": key} if key else {}
    response, _ = await asyncio.gather(
        http.patch("/v1/inputs/votes", json=WRITE, headers=headers), takeover()
    )
    assert response.status_code == status, response.text
    assert "error" in response.json() or status == 200
    assert new.hub.engine.version == (1 if status == 200 else 0)
    if status == 502:
        assert "may or may not" in response.json()["error"]


async def test_no_leader_is_503_after_waiting(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0")
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await http.patch("/v1/inputs/votes", json=WRITE)
    assert response.status_code == 503
    assert response.json()["error"] == "no leader"
    assert loop.time() - started >= 1.9  # leader_wait_s of the test config
