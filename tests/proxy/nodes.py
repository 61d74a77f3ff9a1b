"""In-process nodes and proxies for the proxy tests, on real sockets and a real Redis.

A `TestNode` is a single-node hub (tests/support/services.py) served by uvicorn on 127.0.0.1 and
announced in Redis with NodeRecords, as a follower or a leader would be. Its heartbeat is
driven here, so a test can make the node vanish like a crash (`crash()`: the server stops, the
record is left to expire) or leave cleanly (`stop()`: deregistered at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from redis.asyncio import Redis

from broker import Hub, RunningNode, ServeConfig
from broker.cluster.heartbeat import Heartbeat, now_ms
from broker.serving.server import serving
from broker.store.codec import LeaseRecord
from broker.store.connection import honour_cancellation
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord, NodeRole
from graph import Engine, Service
from proxy import ProxyConfig, RunningProxy
from proxy import serving as proxy_serving
from tests.support.services import make_service

RUN = "run-1"
BEAT_S = 0.05
TTL_MS = 400


class TestNode:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        node_id: str,
        *,
        role: NodeRole = "follower",
        config: ServeConfig | None = None,
        capacity: int | None = None,
        service: Service | None = None,
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.node_id = node_id
        self.role = role
        self.capacity = capacity
        self.config = config or ServeConfig(port=0, shutdown_timeout_s=1, drain_window_s=0.5)
        engine = Engine.for_service(service or make_service())
        self.hub = Hub(engine, run=RUN, config=self.config)
        self.ready = True
        self._stack = AsyncExitStack()
        self._beat_task: asyncio.Task[None] | None = None
        self.running: RunningNode | None = None
        self.heartbeat: Heartbeat | None = None
        self._started_ms = now_ms()

    @property
    def url(self) -> str:
        assert self.running is not None
        return self.running.url

    def record(self) -> NodeRecord:
        return NodeRecord(
            node_id=self.node_id,
            role=self.role,
            epoch=RUN,
            applied=self.hub.engine.version,
            ts_ms=0,
            started_ms=self._started_ms,
            ready=self.ready and not self.hub.draining,
            url=self.url,
            streams=self.hub.stream_count,
            capacity=self.capacity,
            draining=self.hub.draining,
        )

    async def start(self) -> TestNode:
        self.running = await self._stack.enter_async_context(serving(self.hub, self.config))
        self.heartbeat = Heartbeat(
            self.redis, self.keyspace, self.node_id, self.record, interval_s=BEAT_S, ttl_ms=TTL_MS
        )
        await self.heartbeat.beat()
        self._beat_task = asyncio.create_task(self._beat())
        return self

    async def _beat(self) -> None:
        assert self.heartbeat is not None
        while True:
            await asyncio.sleep(BEAT_S)
            await self.heartbeat.beat()
            honour_cancellation()

    async def _stop_beating(self) -> None:
        task, self._beat_task = self._beat_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def crash(self) -> None:
        """Stop serving and beating without a word: the record lingers until its TTL."""
        await self._stop_beating()
        await self._stack.aclose()

    async def stop(self) -> None:
        """A clean exit: deregistered at once."""
        await self._stop_beating()
        if self.heartbeat is not None:
            await self.heartbeat.deregister()
        await self._stack.aclose()
        self.hub.close()


@contextlib.asynccontextmanager
async def node_factory(redis: Redis, keyspace: Keyspace) -> AsyncIterator[Any]:
    """A factory `await start(node_id, **options) -> TestNode`; every node stopped at exit."""
    started: list[TestNode] = []

    async def start(node_id: str, **options: Any) -> TestNode:
        node = await TestNode(redis, keyspace, node_id, **options).start()
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            await node.stop()


def proxy_config(redis_url: str, keyspace: Keyspace, **overrides: Any) -> ProxyConfig:
    base = ProxyConfig(
        redis_url=redis_url,
        service=keyspace.service,
        port=0,
        poll_interval_s=0.05,
        stream_ttl_s=30,
        leader_wait_s=2,
        shutdown_timeout_s=1,
        connect_timeout_s=1,
        request_timeout_s=5,
    )
    return dataclasses.replace(base, **overrides)


@contextlib.asynccontextmanager
async def running_proxy(
    config: ProxyConfig, *, access_log: bool = False
) -> AsyncIterator[RunningProxy]:
    async with proxy_serving(config, access_log=access_log) as proxy:
        yield proxy


async def until_serving(proxy: RunningProxy, count: int) -> None:
    found = await proxy.gateway.membership.wait_for(
        lambda c: sum(1 for n in c.nodes.values() if n.ready) >= count, 3.0
    )
    assert found is not None, "nodes did not join"


async def set_leader(redis: Redis, keyspace: Keyspace, node_id: str, token: int) -> None:
    await redis.set(keyspace.lease, LeaseRecord(token, f"{node_id}/1-abc").encode())


async def until_leader(proxy: RunningProxy, node_id: str) -> None:
    found = await proxy.gateway.membership.wait_for(lambda c: c.leader_id == node_id, 3.0)
    assert found is not None
