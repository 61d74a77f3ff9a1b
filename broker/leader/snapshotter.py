"""A leader's snapshots: capturing its state between ticks, staging it, publishing it.

Every `snapshot_every` versions (or `snapshot_interval_s` seconds after the last one, when the
version moved) the leader captures its input and shared collections at version V — a
synchronous copy, so no tick interleaves — then stages the chunks while writes go on, and
publishes: meta points at V, and both streams are trimmed up to the PREVIOUS snapshot, so a
follower slightly behind V still finds every entry it needs without a resync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Protocol

from broker.errors import BrokerError
from broker.leader.config import LeaderContext
from broker.runtime.clock import now_ms
from broker.runtime.tasks import stop_all
from broker.store.codec import Meta, new_epoch
from broker.store.fenced import (
    EpochChangedError,
    FencedWriter,
    KeyspaceLostError,
    LeaseLostError,
    StaleSnapshotError,
    TrimResult,
)
from broker.store.scripts import RedisCallError
from broker.store.snapshot_codec import SnapshotManifest, snapshot_fields
from broker.store.snapshots import stage_snapshot
from broker.types import Entry
from graph import Engine

logger = logging.getLogger("skiff.broker")

_POLL_S: Final = 0.5
_YIELD_EVERY: Final = 5000


@dataclass(frozen=True, slots=True)
class StateCapture:
    """A leader's collections at one version (copied: later ticks do not change it)."""

    version: int
    inputs: dict[str, list[Entry]]
    shared: dict[str, list[Entry]]


async def capture(engine: Engine) -> StateCapture:
    """Copy the engine's collections; call it holding the write lock (no tick can run).

    A million keys take a second or two to copy: the copy yields to the event loop every few
    thousand entries so lease renewals, heartbeats and SSE keep going meanwhile."""

    async def copy(name: str) -> list[Entry]:
        out: list[Entry] = []
        for n, entry in enumerate(engine.collection_items(name)):
            out.append(entry)
            if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return out

    return StateCapture(
        engine.version,
        # The inputs and the shared external collections: what a rebuild starts from.
        {name: await copy(name) for name in engine.durable_names},
        {name: await copy(name) for name in engine.shared_names},
    )


async def stage_capture(
    ctx: LeaderContext, state: StateCapture, epoch: str, term: int
) -> tuple[SnapshotManifest, int]:
    """Stage `state` as the snapshot (epoch, state.version); returns its manifest and size."""
    manifest = SnapshotManifest.plan(
        epoch=epoch,
        version=state.version,
        term=term,
        created_ms=now_ms(),
        chunk_size=ctx.config.chunk_size,
        inputs=state.inputs,
        shared=state.shared,
    )
    size = 0

    def counted() -> Iterator[tuple[str, bytes]]:
        nonlocal size
        for field, chunk in snapshot_fields(manifest, state.inputs, state.shared):
            size += len(chunk)
            yield field, chunk

    await stage_snapshot(ctx.redis, ctx.keyspace, manifest, counted())
    return manifest, size


async def start_epoch(
    ctx: LeaderContext,
    writer: FencedWriter,
    engine: Engine,
    replaces: Meta | None,
) -> tuple[str, int]:
    """Publish the engine's state as the snapshot a new epoch starts from (call between
    ticks, holding the write lock); returns (epoch, version). `replaces`: the meta read
    before (None when the keyspace has none)."""
    epoch = new_epoch()
    state = await capture(engine)
    await stage_capture(ctx, state, epoch, writer.lease.token)
    now = now_ms()
    meta = Meta(
        service=ctx.service.name,
        epoch=epoch,
        shared=engine.shared_names,
        inputs=engine.input_names,
        head=state.version,
        snapshot=state.version,
        created_ms=now,
        head_ms=now,
        snapshot_ms=now,
    )
    await writer.init_epoch(meta, replaces=replaces)
    return epoch, state.version


class Snapshotting(Protocol):
    """What the snapshotter reads and sets of the leadership it serves (leadership.py).

    A protocol rather than an import: the leadership owns its snapshotter."""

    lock: asyncio.Lock
    engine: Engine
    epoch: str
    writer: FencedWriter
    writable: bool
    needs_sync: bool
    snapshot_version: int

    def lease_trouble(self, reason: str) -> None: ...


class Snapshotter:
    """Takes the snapshots of one leadership, one at a time."""

    def __init__(self, ctx: LeaderContext, leadership: Snapshotting) -> None:
        self._ctx = ctx
        self._leadership = leadership
        self._tasks = ctx.tasks
        self._task: asyncio.Task[TrimResult | None] | None = None
        self._last_s = time.monotonic()

    def after_write(self, version: int) -> None:
        """Start a snapshot in the background when enough versions accumulated."""
        due = version - self._leadership.snapshot_version >= self._ctx.config.snapshot_every
        if due and (self._task is None or self._task.done()):
            self._task = self._tasks.spawn(self.snapshot(), name="snapshot")

    async def run(self) -> None:
        """The time-based trigger (runs until cancelled)."""
        interval = self._ctx.config.snapshot_interval_s
        while True:
            await asyncio.sleep(min(interval, _POLL_S))
            stale = self._leadership.engine.version > self._leadership.snapshot_version
            if stale and time.monotonic() - self._last_s >= interval:
                if self._task is None or self._task.done():
                    self._task = self._tasks.spawn(self.snapshot(), name="snapshot")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_all(task)

    async def snapshot(self) -> TrimResult | None:
        """Snapshot the current version now; None when there was nothing new or it failed."""
        lead = self._leadership
        async with lead.lock:
            if not lead.writable or lead.engine.version <= lead.snapshot_version:
                return None
            state = await capture(lead.engine)
            epoch, replaces = lead.epoch, lead.snapshot_version
        self._last_s = time.monotonic()
        started = time.perf_counter()
        try:
            _, size = await stage_capture(self._ctx, state, epoch, lead.writer.lease.token)
            if (lead.epoch, lead.snapshot_version) != (epoch, replaces):
                return None  # a republish replaced the keyspace meanwhile
            trimmed = await lead.writer.publish_snapshot(
                epoch,
                state.version,
                replaces=replaces,
                trim_before=replaces + 1,
                now_ms=now_ms(),
            )
        except LeaseLostError:
            lead.lease_trouble("a snapshot was fenced")
            return None
        except (KeyspaceLostError, EpochChangedError, StaleSnapshotError) as err:
            lead.needs_sync = True
            logger.warning("snapshot at %d not published: %s", state.version, err)
            return None
        except (RedisCallError, BrokerError) as err:
            self._ctx.metrics.redis_errors.inc()
            logger.warning("snapshot at %d failed: %s", state.version, err)
            return None
        lead.snapshot_version = max(lead.snapshot_version, state.version)
        metrics = self._ctx.metrics
        metrics.snapshot_version.set(state.version)
        metrics.snapshot_bytes.set(size)
        metrics.snapshot_seconds.observe(time.perf_counter() - started)
        logger.info(
            "snapshot %s/%d published (%d bytes), trimmed %d deltas and %d inputs",
            epoch,
            state.version,
            size,
            trimmed.deltas,
            trimmed.inputs,
        )
        return trimmed
