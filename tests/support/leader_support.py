"""Running leader candidates in-process for the leader tests, and reading what they wrote."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from broker import ServeConfig, SkiffClient
from broker.client import StreamEvent
from broker.leader.config import LeaderConfig
from broker.leader.leadership import Leadership
from broker.leader.node import LeaderNode, leader_node
from broker.store.codec import DeltaEntry, InputLogEntry, Meta
from broker.store.keyspace import Keyspace, version_of
from broker.store.reads import read_meta
from graph import Service
from tests.support.polling import eventually
from tests.support.redis_server import stream_entries

CONFIG = ServeConfig(port=0, heartbeat_s=0.2, shutdown_timeout_s=1)


def leader_config(node_id: str, **overrides: Any) -> LeaderConfig:
    # A short fresh-start grace: most tests start from an empty keyspace.
    options: dict[str, Any] = {"lease_ttl_s": 3.0, "fresh_start_grace_s": 0.1}
    options.update(overrides)
    return LeaderConfig(node_id=node_id, **options)


@asynccontextmanager
async def candidate(
    redis_url: str, service: Service, node_id: str, **overrides: Any
) -> AsyncIterator[LeaderNode]:
    async with leader_node(
        service, CONFIG, leader_config(node_id, **overrides), redis_url=redis_url
    ) as node:
        yield node


async def leading(node: LeaderNode, within: float = 10.0) -> Leadership:
    """The node's leadership once it serves as the leader."""

    def check() -> Leadership | None:
        lead = node.leadership
        return lead if lead is not None and lead.hub is not None and lead.writable else None

    result: Leadership = await eventually(check, within=within)
    await eventually(lambda: _healthy(node), within=within)
    return result


async def _healthy(node: LeaderNode) -> bool:
    try:
        async with httpx.AsyncClient(base_url=node.url or "") as http:
            return (await http.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def patch(url: str, collection: str, entries: Any, key: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return await http.patch(f"/v1/inputs/{collection}", json=entries, headers=headers)


async def admin_state(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/v1/admin/state")
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state


async def deltas(redis: Redis, keyspace: Keyspace) -> list[DeltaEntry]:
    return [DeltaEntry.decode(f) for _, f in await stream_entries(redis, keyspace.deltas)]


async def inputs(redis: Redis, keyspace: Keyspace) -> list[InputLogEntry]:
    return [InputLogEntry.decode(f) for _, f in await stream_entries(redis, keyspace.inputs)]


async def stream_versions(redis: Redis, key: str) -> list[int]:
    return [version_of(entry_id) for entry_id, _ in await stream_entries(redis, key)]


async def meta_of(redis: Redis, keyspace: Keyspace) -> Meta:
    meta = await read_meta(redis, keyspace)
    assert meta is not None
    return meta


def events(client: SkiffClient, stream_id: str) -> AsyncGenerator[StreamEvent, None]:
    """A stream's events without reconnects (an async generator, for `aclosing`)."""
    return cast(AsyncGenerator[StreamEvent, None], client.events(stream_id, reconnect=False))
