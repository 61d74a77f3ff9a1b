"""skiff.dev.embedded_redis and the factory fixture: the servers the other Redis tests rely on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from skiff.dev.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_server_binary
from tests.support.redis_server import RedisTarget, ServerFactory

pytestmark = pytest.mark.timeout(60)


async def _client(server: EmbeddedRedis) -> Redis:
    return Redis.from_url(server.url)


def test_binary_is_found() -> None:
    binary = find_server_binary()
    assert os.access(binary, os.X_OK)
    assert Path(binary).name in ("redis-server", "valkey-server")


async def test_context_manager_starts_and_cleans_up() -> None:
    async with EmbeddedRedis() as server:
        directory = server.directory
        client = await _client(server)
        assert await client.ping()
        assert await client.config_get("save") == {"save": ""}  # redis-py decodes CONFIG
        await client.aclose()
    assert not server.running
    assert not directory.exists()


async def test_restart_keeps_an_append_only_file(redis_server_factory: ServerFactory) -> None:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    port, directory = server.port, server.directory
    client = await _client(server)
    await client.xadd("s", {"f": "v"}, id="5-0")
    await client.aclose()
    await server.kill()  # a crash: with appendfsync always, the acknowledged write survives
    await server.start()
    assert (server.port, server.directory) == (port, directory)
    client = await _client(server)
    assert await client.xrange("s") == [(b"5-0", {b"f": b"v"})]
    await client.aclose()


async def test_without_persistence_a_restart_loses_everything(
    redis_server_factory: ServerFactory,
) -> None:
    server = await redis_server_factory()
    client = await _client(server)
    await client.set("k", "v")
    await client.aclose()
    await server.stop()
    await server.start()
    client = await _client(server)
    assert await client.dbsize() == 0
    await client.aclose()


async def test_password(redis_server_factory: ServerFactory) -> None:
    server = await redis_server_factory(password="s3:cr@t")
    assert server.url.startswith("redis://:s3%3Acr%40t@")
    client = await _client(server)
    assert await client.ping()
    await client.aclose()
    # No retries: redis-py 8 would otherwise retry the refused handshake for seconds.
    anonymous = Redis(port=server.port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis_errors.AuthenticationError):
        await anonymous.ping()
    await anonymous.aclose()


async def test_factory_servers_are_independent(redis_server_factory: ServerFactory) -> None:
    first = await redis_server_factory()
    second = await redis_server_factory()
    assert first.port != second.port
    a, b = await _client(first), await _client(second)
    await a.set("k", "1")
    await b.flushall()
    assert await a.get("k") == b"1"
    await a.aclose()
    await b.aclose()


async def test_bad_arguments_fail_with_the_server_log() -> None:
    server = EmbeddedRedis(extra_args=("--no-such-option", "1"), start_timeout_s=5)
    with pytest.raises(EmbeddedRedisError, match="no-such-option"):
        async with server:
            pass


async def test_main_fixture_serves_a_clean_database(
    redis_target: RedisTarget, redis_client: Redis
) -> None:
    assert await redis_client.ping()
    if redis_target.owned:
        assert await redis_client.dbsize() == 0
