"""Fixtures of the broker tests: a hub over the test service and an in-process HTTP client; the
test service named after the test's keyspace, a scripted leader over it and a follower's sync."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker import Hub, ServeConfig, create_app
from broker.follower.sync import MirrorSync
from broker.runtime.backoff import Backoff
from broker.store.keyspace import Keyspace
from graph import Engine, Service
from tests.support.scripted_leader import ScriptedLeader
from tests.support.services import make_service

RUN = "testrun"

HubFactory = Callable[..., Hub]


@pytest.fixture
def config() -> ServeConfig:
    """The node configuration of a test; override the fixture to change it."""
    return ServeConfig(port=0, max_body_bytes=4096)


@pytest.fixture
def make_hub(config: ServeConfig) -> Iterator[HubFactory]:
    """Builds hubs over fresh engines, with ServeConfig overrides; closes them afterwards."""
    hubs: list[Hub] = []

    def build(**overrides: Any) -> Hub:
        hub = Hub(
            Engine.for_service(make_service()),
            run=RUN,
            config=dataclasses.replace(config, **overrides),
        )
        hubs.append(hub)
        return hub

    yield build
    for hub in hubs:
        hub.close()


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    return make_hub()


@pytest.fixture
async def http(hub: Hub, config: ServeConfig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub, config))
    async with httpx.AsyncClient(transport=transport, base_url="http://skiff.test") as client:
        yield client


@pytest.fixture
def service(keyspace: Keyspace) -> Service:
    """The test service, under the test's own keyspace."""
    return dataclasses.replace(make_service(), name=keyspace.service)


@pytest.fixture
async def leader(redis_client: Redis, keyspace: Keyspace, service: Service) -> ScriptedLeader:
    """A leader played by the test, its first epoch started."""
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.start_epoch()
    return leader


@pytest.fixture
def sync(redis_client: Redis, keyspace: Keyspace, service: Service) -> MirrorSync:
    """A follower's replication loop, quick to block and to back off."""
    return MirrorSync(
        redis_client, keyspace, service, ServeConfig(port=0), block_ms=20,
        backoff=Backoff(0.005, 0.05),
    )  # fmt: skip
