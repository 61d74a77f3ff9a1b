"""Fixtures of the proxy tests: nodes announced in Redis, and a proxy in front of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from proxy import ProxyConfig, RunningProxy
from tests.proxy.nodes import TestNode, node_factory, proxy_config, running_proxy

StartNode = Callable[..., Awaitable[TestNode]]


@pytest.fixture
async def start_node(redis_client: Redis, keyspace: Keyspace) -> AsyncIterator[StartNode]:
    """`await start_node("f-0", role="follower", capacity=None)`; all stopped afterwards."""
    async with node_factory(redis_client, keyspace) as start:
        yield start


@pytest.fixture
def config(redis_url: str, keyspace: Keyspace) -> ProxyConfig:
    """The proxy configuration of a test; override the fixture to change it."""
    return proxy_config(redis_url, keyspace)


@pytest.fixture
async def proxy(config: ProxyConfig, start_node: StartNode) -> AsyncIterator[RunningProxy]:
    # Depends on start_node so the proxy stops before the nodes do.
    async with running_proxy(config) as running:
        yield running


@pytest.fixture
async def http(proxy: RunningProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as client:
        yield client


def sse_headers(**extra: Any) -> dict[str, str]:
    return {"Accept": "text/event-stream", **{k.replace("_", "-"): v for k, v in extra.items()}}
