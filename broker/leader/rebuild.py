"""Rebuilding a leader's engine from Redis: the newest snapshot's inputs plus the input log.

User code is deterministic, so replaying the write batches recorded after the snapshot, in
version order, recomputes exactly the shared state that was published; the deltas are not read
(nor republished). The same replay brings a live leader's engine forward when Redis holds
versions it has not applied (an append whose outcome it could not see).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.errors import BrokerError
from broker.runtime.gc_pause import gc_paused
from broker.store.codec import InputLogEntry, Meta
from broker.store.keyspace import Keyspace, stream_id_of, version_of
from broker.store.scripts import RedisCallError
from broker.store.snapshots import read_manifest, read_snapshot
from graph import Engine, GraphError, Service, TickResult
from graph.external import ExternalListener

logger = logging.getLogger("skiff.broker")

_PAGE: Final = 1000


class RebuildError(BrokerError):
    """The keyspace cannot bring an engine to the head: a version is missing from the input
    log (trimmed past the engine, or never written) or a recorded batch no longer applies."""


async def read_input_log(
    redis: Redis, keyspace: Keyspace, after: int, upto: int
) -> AsyncIterator[InputLogEntry]:
    """The input log entries of versions `after + 1 .. upto`, in order, a page at a time."""
    # `(` makes the bound exclusive: the page starts right after `after`.
    start = f"({stream_id_of(after)}" if after >= 1 else "-"
    while True:
        try:
            page: Any = await redis.xrange(keyspace.inputs, start, stream_id_of(upto), count=_PAGE)
        except redis_errors.RedisError as err:
            raise RedisCallError.wrap("reading the input log", err) from err
        for entry_id, fields in page:
            yield InputLogEntry.decode(fields)
            start = f"({stream_id_of(version_of(entry_id))}"
        if len(page) < _PAGE:
            return


async def replay(
    engine: Engine,
    redis: Redis,
    keyspace: Keyspace,
    upto: int,
    on_tick: Callable[[TickResult], None] | None = None,
) -> int:
    """Apply the input log after `engine.version` up to `upto`; returns how many entries.

    `on_tick` sees each tick (a live leader publishes them to its hub). Raises RebuildError
    when the log does not continue the engine's version exactly.
    """
    applied = 0
    if upto <= engine.version:
        return 0
    known = set(engine.durable_names)
    ignored: set[str] = set()
    async for entry in read_input_log(redis, keyspace, engine.version, upto):
        expected = engine.version + 1
        if entry.version != expected:
            raise RebuildError(
                f"the input log jumps from version {engine.version} to {entry.version}"
            )
        writes = entry.writes
        if not known.issuperset(writes):
            # A collection this version of the service no longer has (an input removed, an
            # external resource create_graph no longer opens): its writes mean nothing now.
            ignored.update(name for name in writes if name not in known)
            writes = {name: batch for name, batch in writes.items() if name in known}
        try:
            result = engine.apply(writes, version=entry.version)
        except GraphError as err:
            raise RebuildError(f"replaying version {entry.version} failed: {err}") from err
        applied += 1
        if on_tick is not None:
            on_tick(result)
    if engine.version != upto:
        raise RebuildError(f"the input log ends at {engine.version}, the head is {upto}")
    if ignored:
        logger.warning("ignored logged writes of collections the service no longer has: %s",
                       sorted(ignored))  # fmt: skip
    return applied


def _seed(
    service: Service,
    version: int,
    external_state: dict[str, list[Any]],
    listener: ExternalListener | None,
) -> Engine:
    with gc_paused():
        engine = Engine.for_service(service, external_state, listener)
    if version > 0:
        # An empty tick moves the engine to the snapshot's version.
        engine.apply({}, version=version)
    return engine


async def rebuild(
    redis: Redis,
    keyspace: Keyspace,
    service: Service,
    meta: Meta,
    listener: ExternalListener | None = None,
) -> Engine:
    """A leader's engine at `meta.head`: the snapshot's input part, then the log after it.

    The input part also holds the shared external collections (graph/external.py) as they
    were: each is given its content back when create_graph opens it, so the logged updates
    replay onto it; `listener` hears of it opening (the node subscribes to it again)."""
    manifest = await read_manifest(redis, keyspace, meta.epoch, meta.snapshot)
    stored = await read_snapshot(redis, keyspace, manifest, "input")
    inputs = {name: stored.pop(name, []) for name in service.input_names}
    seeded = dataclasses.replace(service, inputs=inputs)
    try:
        # Seconds of CPU for a large state: in a worker thread, so the event loop keeps renewing
        # the lease (nothing else can see this engine yet).
        engine = await asyncio.to_thread(_seed, seeded, manifest.version, stored, listener)
    except GraphError as err:
        raise RebuildError(f"the snapshot's inputs do not load: {err}") from err
    unknown = set(stored) - set(engine.externals.names("shared"))
    if unknown:
        logger.warning("ignoring snapshot collections the service no longer has: %s",
                       sorted(unknown))  # fmt: skip
    count = await replay(engine, redis, keyspace, meta.head)
    logger.info(
        "rebuilt %s at version %d: snapshot %d + %d logged batches",
        keyspace.service,
        engine.version,
        manifest.version,
        count,
    )
    return engine
