"""Connecting to Redis the way every skiff node does.

`redis://`, `rediss://` (TLS) and credentials in the URL are handled by redis-py's URL parsing.
redis-py's default client retries a failed call for seconds; a node must instead notice an
outage quickly (to mark itself not ready and to let a lease expire on time), so calls fail fast
and the node's own loops retry with backoff.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from broker.errors import ConfigError


def connect(url: str, *, timeout_s: float = 2.0, pool_size: int | None = None) -> Redis:
    """A bytes-mode client for `url` that fails fast (no hidden retries).

    `pool_size` bounds its connections, and a call finding them all busy waits (up to
    `timeout_s`) for one instead of failing with "Too many connections": for a process making
    many concurrent calls, like the proxy under a burst of stream creations."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"a Redis URL starts with redis://, rediss:// or unix://, got {redacted(url)!r}"
        )
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }
    if pool_size is None:
        return Redis.from_url(url, **options)
    pool = BlockingConnectionPool.from_url(
        url, max_connections=pool_size, timeout=timeout_s, **options
    )
    return Redis(connection_pool=pool)


def redacted(url: str) -> str:
    """The URL with any password replaced, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"


def honour_cancellation() -> None:
    """Raise CancelledError if the current task was asked to cancel.

    Call it after a Redis command in a loop that is stopped by cancelling its task. On Python
    3.11 redis-py sends commands under `asyncio.wait_for`, which loses a cancellation that lands
    as the send completes (CPython gh-86296, fixed in 3.12): the command returns normally, the
    task stays marked as cancelling, and a `while True` loop would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
