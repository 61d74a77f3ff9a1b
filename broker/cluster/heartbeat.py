"""Heartbeat: a node announcing itself in Redis while it runs.

Every `interval_s` the node's current NodeRecord is written to `keyspace.node(id)` with a PX
expiry of `ttl_ms` (a dead node's record vanishes a few beats later) and the node id is scored
with the write time in `keyspace.nodes` (so `skiff inspect` and the proxy can enumerate nodes
without SCAN). On exit the record and the index entry are removed at once.

A heartbeat never fails its node: a Redis error is counted (and reported to `on_error`, e.g. a
metrics counter), and the next beat simply tries again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.errors import ConfigError
from broker.runtime.clock import now_ms
from broker.runtime.tasks import Supervisor, stop_all
from broker.store.connection import honour_cancellation
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord

logger = logging.getLogger("skiff.broker")

#: How often a node writes its record, and how long the record outlives its last write.
HEARTBEAT_INTERVAL_S: Final = 1.0
HEARTBEAT_TTL_MS: Final = 3000
# `nodes` index entries older than this are pruned by any live node: the index stays bounded
# when pods come and go under fresh names, while a node away for minutes is still listed.
_PRUNE_AFTER_MS: Final = 60 * 60 * 1000


class Heartbeat:
    """`async with Heartbeat(redis, keyspace, node_id, current_record): ...`

    `record()` is called at every beat for the node's state; its `ts_ms` is replaced with the
    time of the write (the same value scored in the `nodes` index).
    """

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        node_id: str,
        record: Callable[[], NodeRecord],
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        ttl_ms: int = HEARTBEAT_TTL_MS,
        on_error: Callable[[Exception], None] | None = None,
        tasks: Supervisor | None = None,
    ) -> None:
        if interval_s <= 0 or ttl_ms <= interval_s * 1000:
            raise ConfigError("the heartbeat ttl must outlast its interval")
        self._redis = redis
        self._keys = keyspace
        self._node_key = keyspace.node(node_id)  # validates the id early
        self.node_id = node_id
        self._record = record
        self._interval_s = interval_s
        self._ttl_ms = ttl_ms
        self._on_error = on_error
        self._tasks = tasks or Supervisor(f"heartbeat {node_id}")
        self._task: asyncio.Task[None] | None = None
        #: Failed Redis calls so far, and the time (ms) of the last successful beat.
        self.errors = 0
        self.last_beat_ms: int | None = None
        self._failing = 0

    async def beat(self) -> bool:
        """Write the record once; False (counted) when Redis failed."""
        ts = now_ms()
        record = dataclasses.replace(self._record(), node_id=self.node_id, ts_ms=ts)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._node_key, record.encode(), px=self._ttl_ms)
                pipe.zadd(self._keys.nodes, {self.node_id: ts})
                pipe.zremrangebyscore(self._keys.nodes, "-inf", ts - _PRUNE_AFTER_MS)
                await pipe.execute()
        except (redis_errors.RedisError, OSError) as err:
            self._failed("heartbeat", err)
            return False
        self.last_beat_ms = ts
        self._failing = 0
        return True

    async def deregister(self) -> bool:
        """Remove the record and the index entry (a clean exit); False when Redis failed."""
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._node_key)
                pipe.zrem(self._keys.nodes, self.node_id)
                await pipe.execute()
        except (redis_errors.RedisError, OSError) as err:
            self._failed("deregistering", err)
            return False
        return True

    async def __aenter__(self) -> Heartbeat:
        self._task = self._tasks.spawn(self._run(), name=f"heartbeat {self.node_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_all(task)
        await self.deregister()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.beat()
            # redis-py on 3.11 can swallow a cancel that lands mid-command (see redis_conn).
            honour_cancellation()
            # Beats keep their cadence however long a write took.
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    def _failed(self, what: str, err: Exception) -> None:
        self.errors += 1
        self._failing += 1
        if self._on_error is not None:
            self._on_error(err)
        # One warning per outage, not one a second.
        level = logging.WARNING if self._failing == 1 else logging.DEBUG
        logger.log(level, "%s of node %s failed: %s", what, self.node_id, err)
