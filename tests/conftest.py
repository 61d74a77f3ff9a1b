"""Real Redis for the tests (see tests/support/redis_server.py for where it comes from).

Fixtures:
- `redis_target` (session, parametrised `local` / `docker`): the server the suite runs against.
  Every test using a Redis fixture runs once per case; `docker` is skipped, with the reason,
  when no Docker-compatible engine answers. The `docker` cases carry the `containers` marker:
  `make test-containers` runs them (`-m containers`) against the local engine.
- `redis_url` (session): its URL, for tests that start `skiff` processes.
- `keyspace` (function): a Keyspace under a service name unique to the test, so tests never see
  each other's keys, even on a shared `SKIFF_TEST_REDIS_URL` server.
- `redis_client` (function): a `redis.asyncio.Redis` (bytes replies, like the broker's clients)
  to a clean database: flushed first when the session owns the server; the test's `keyspace`
  keys are deleted afterwards in every case.
- `redis_server_factory` (function): `await redis_server_factory(appendonly=True,
  appendfsync="always")` starts a private server (skiff.dev.embedded_redis.EmbeddedRedis) that the
  test may stop/start (same port and directory), kill, or FLUSHALL; all stopped at teardown.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from tests.support.redis_server import (
    RedisTarget,
    ServerFactory,
    Skip,
    container_target,
    local_target,
)

# PostgreSQL and Kafka for the tests that need them (throwaway servers, started once per session).
pytest_plugins = ["tests.support.postgres_fixtures", "tests.support.kafka_fixtures"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The `docker` cases join the `containers` selection that `make test-containers` runs.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("redis_target") == "docker":
            item.add_marker(pytest.mark.containers)


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=["local", "docker"])
async def redis_target(request: pytest.FixtureRequest) -> AsyncIterator[RedisTarget]:
    provide = local_target if request.param == "local" else container_target
    async with contextlib.AsyncExitStack() as stack:
        try:
            target = await stack.enter_async_context(provide())
        except Skip as skip:
            pytest.skip(f"{request.param} Redis unavailable: {skip}")
        yield target


@pytest.fixture(scope="session")
def redis_url(redis_target: RedisTarget) -> str:
    return redis_target.url


@pytest.fixture
def keyspace(request: pytest.FixtureRequest) -> Keyspace:
    # Readable in MONITOR output and leftovers, unique across runs sharing a server.
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:60]
    return Keyspace(f"t-{name}-{secrets.token_hex(3)}")


@pytest_asyncio.fixture
async def redis_client(redis_target: RedisTarget, keyspace: Keyspace) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_target.url, decode_responses=False)
    try:
        if redis_target.owned:
            await client.flushdb()
        yield client
        async for key in client.scan_iter(match=keyspace.pattern, count=500):
            await client.unlink(key)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def redis_server_factory() -> AsyncIterator[ServerFactory]:
    factory = ServerFactory()
    try:
        yield factory
    finally:
        await factory.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    # Lets fixtures see whether the test body failed (`request.node.rep_call`), e.g. to print
    # the logs of the processes a cluster test started.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
