"""Leadership: the state a leader holds and the write path that makes each write durable.

One asyncio.Lock serialises everything that moves the engine. A write is validated (400/404),
checked against its Idempotency-Key, computed as an open tick (422 when user code raises:
nothing is appended), appended to Redis by the fenced script — the input batch to the input log,
the tick's shared changeset to the delta stream, as version `head + 1` — and only then committed
and fanned out to the hub: the 200 is the acknowledgement that the write is durable.

When an append fails the tick is rolled back, except when the failure hid the outcome (a
timeout): the delta is read back, and a write that did land is committed. When it cannot be
read back the leader marks itself out of sync and reconciles with Redis before the next write.
Reconciling (also after re-acquiring the lease) compares meta with the engine: the same epoch
and head -> nothing to do; a head ahead -> replay the input log; no meta, or a head behind
(Redis lost data) -> republish the in-memory state under a new epoch; another epoch -> this
state is not authoritative any more (StateSupersededError: the node discards it and rebuilds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from broker.errors import (
    BrokerError,
    NotLeaderError,
    RedisUnavailableError,
    UnavailableError,
)
from broker.external.feeds import Feeds
from broker.leader.config import LeaderContext
from broker.leader.history import LostHistory, find_lost_history, report
from broker.leader.rebuild import RebuildError, replay
from broker.leader.snapshotter import Snapshotter, start_epoch
from broker.runtime.clock import now_ms
from broker.serving.hub import Hub
from broker.store.codec import DeltaEntry, InputLogEntry, LeaseRecord, Meta
from broker.store.durability import NotDurableError
from broker.store.fenced import (
    EpochChangedError,
    FencedWriter,
    KeyspaceLostError,
    LeaseLostError,
    StaleSnapshotError,
    VersionConflictError,
)
from broker.store.reads import appended, read_idempotency, read_meta
from broker.store.scripts import RedisCallError
from broker.types import Entry
from graph import Engine, TickResult
from graph.engine import PendingTick
from graph.external import ExternalCollection

logger = logging.getLogger("skiff.broker")

_RETRY: Final = -1
T = TypeVar("T")


class StateSupersededError(BrokerError):
    """This node's state is no longer the service's: another leader's epoch replaced it."""


class Leadership:
    """The engine a leader writes through, the epoch it publishes and its lease record."""

    def __init__(
        self,
        ctx: LeaderContext,
        engine: Engine,
        epoch: str,
        record: LeaseRecord,
        snapshot_version: int,
        feeds: Feeds | None = None,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        #: The subscriptions of the engine's external collections (started once it serves).
        self.feeds = feeds or Feeds(ctx.service.external_services, ctx.tasks)
        self.epoch = epoch
        self.writer = FencedWriter(ctx.redis, ctx.keyspace, record, ctx.config.durability)
        self.snapshot_version = snapshot_version
        self.lock = asyncio.Lock()
        self.hub: Hub | None = None
        #: False while the lease is in doubt; `reason` says why.
        self.writable = True
        self.reason = "ok"
        self.redis_ok = True
        #: An append's outcome is unknown: reconcile with Redis before the next write.
        self.needs_sync = False
        #: Set when the keeper should look at the lease now rather than at its next renewal.
        self.trouble = asyncio.Event()
        self.lost: str | None = None
        self.snapshotter = Snapshotter(ctx, self)
        #: Called with the new epoch after a republish (the node resets its hub's run).
        self.on_epoch: Callable[[str], None] | None = None

    # -- the write path --------------------------------------------------------------------
    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        self._check_writable()
        # 400/404 before anything else (the normalised batch is what the input log records).
        batch = self.engine.validate({collection: entries})
        async with self.lock:
            return await self._write_locked(batch, idempotency_key)

    async def write_external(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> int | None:
        """Make one update of a shared external collection durable, like a client's write (the
        input log records it: a rebuild replays it). None when it changes nothing, or the
        collection is no longer this engine's. Raises UnavailableError (and its NotLeaderError,
        RedisUnavailableError) when it cannot be written now: the feed retries."""
        self._check_writable()
        async with self.lock:
            if self.needs_sync:
                await self._guarded(self.reconcile())
            # The difference is taken under the lock: nothing else moves the engine meanwhile.
            batch = self.engine.external_write(collection, entries, is_init)
            if not batch:
                return None
            return await self._write_locked(batch, None)

    async def _write_locked(self, batch: dict[str, Any], idempotency_key: str | None) -> int:
        self._check_writable()
        if self.needs_sync:
            await self._guarded(self.reconcile())
        if idempotency_key is not None:
            seen = await self._guarded(
                read_idempotency(self.ctx.redis, self.ctx.keyspace, idempotency_key)
            )
            if seen is not None:
                await self._guarded(self.writer.confirm())  # a retry after a 503
                return seen
        for _ in range(2):
            version = await self._append_tick(batch, idempotency_key)
            if version != _RETRY:
                return version
        raise UnavailableError("the keyspace keeps changing; retry")

    async def _append_tick(self, batch: dict[str, Any], idempotency_key: str | None) -> int:
        started = time.perf_counter()
        version = self.engine.version + 1
        pending = self.engine.begin(batch, version)  # user code raising: 422, nothing appended
        term, now = self.writer.lease.token, now_ms()
        delta = DeltaEntry(version, self.epoch, term, now, pending.result.shared.changes)
        logged = InputLogEntry(version, term, now, batch, idempotency_key)
        try:
            outcome = await self.writer.append(delta, logged)
        except KeyspaceLostError:
            pending.abort()
            await self._guarded(self.new_epoch(None))
            return _RETRY
        except LeaseLostError as err:
            pending.abort()
            self.lease_trouble(f"lost the lease ({err})")
            raise NotLeaderError("not the leader any more (lost the lease)") from err
        except EpochChangedError as err:
            pending.abort()
            self.lose(f"the keyspace moved to epoch {err.current}")
            raise NotLeaderError("not the leader any more (the epoch changed)") from err
        except VersionConflictError as err:
            pending.abort()
            self.needs_sync = True
            raise UnavailableError(f"out of sync with Redis ({err}); retry") from err
        except NotDurableError as err:
            raise self._not_durable(pending, err) from err
        except RedisCallError as err:
            landed = err.transient and await appended(
                self.ctx.redis, self.ctx.keyspace, self.epoch, version, term
            )
            if landed:
                try:
                    await self._guarded(self.writer.confirm())
                except UnavailableError:
                    pending.abort()
                    self.needs_sync = True
                    raise
                return self._commit(pending, started)
            pending.abort()
            self.needs_sync = True
            self._redis_failed(err)
            raise RedisUnavailableError(
                f"redis unreachable, write not acknowledged: {err}"
            ) from err
        except BaseException:
            # Cancelled mid-append: it may have landed.
            pending.abort()
            self.needs_sync = True
            raise
        if outcome.duplicate:
            pending.abort()
            await self._guarded(self.writer.confirm())
            return outcome.version
        return self._commit(pending, started)

    def _not_durable(self, pending: PendingTick, err: NotDurableError) -> UnavailableError:
        # The entry is on the primary, unconfirmed: not committed here, not acknowledged. The
        # next write reconciles (replays it if Redis still has it); a retry with the same
        # Idempotency-Key is answered once a replica confirms it.
        pending.abort()
        self.needs_sync = True
        self.ctx.metrics.not_durable.inc()
        logger.warning("write not acknowledged: %s", err)
        return UnavailableError(f"write not confirmed by the replicas ({err}); retry")

    def _commit(self, pending: PendingTick, started: float) -> int:
        pending.commit()
        result = pending.result
        if self.hub is not None:
            self.hub.publish(result)
        metrics = self.ctx.metrics
        metrics.tick_seconds.observe(time.perf_counter() - started)
        metrics.writes.inc()
        metrics.head_version.set(result.version)
        metrics.applied_version.set(result.version)
        self.snapshotter.after_write(result.version)
        return result.version

    # -- reconciling with Redis --------------------------------------------------------------
    async def reconcile(self) -> None:
        """Make Redis and the engine agree (call with the lock held); see the module doc."""
        meta = await read_meta(self.ctx.redis, self.ctx.keyspace)
        version = self.engine.version
        if meta is None:
            await self.new_epoch(None)
        elif meta.epoch != self.epoch:
            self.lose(f"the keyspace moved to epoch {meta.epoch}")
            raise StateSupersededError(self.lost or "")
        elif meta.head < version:
            report(self.ctx, LostHistory(meta.epoch, meta.head, version, "this leader"))
            await self.new_epoch(meta)
        else:
            if meta.head > version:
                try:
                    count = await replay(
                        self.engine, self.ctx.redis, self.ctx.keyspace, meta.head, self._fan_out
                    )
                except RebuildError as err:
                    self.lose(f"cannot catch up with Redis: {err}")
                    raise StateSupersededError(self.lost or "") from err
                logger.info("caught up %d versions logged in Redis", count)
            self.snapshot_version = meta.snapshot
            await self._check_history(meta)
        self.needs_sync = False

    async def _check_history(self, meta: Meta) -> None:
        # Another node applied versions of this epoch that Redis does not hold any more.
        lost = await find_lost_history(self.ctx, meta)
        if lost is not None:
            report(self.ctx, lost)
            await self.new_epoch(meta)

    async def check_meta(self) -> None:
        """After a renewal: is the keyspace still ours, at our head, and no node ahead of it?
        Reconcile if not."""
        async with self.lock:
            meta = await read_meta(self.ctx.redis, self.ctx.keyspace)
            ours = meta is not None and (meta.epoch, meta.head) == (self.epoch, self.engine.version)
            if not ours or self.needs_sync:
                await self.reconcile()
            elif meta is not None:
                await self._check_history(meta)

    async def resume(self, record: LeaseRecord) -> None:
        """Write with `record` (a renewed or re-acquired lease) after reconciling."""
        async with self.lock:
            self.writer = FencedWriter(
                self.ctx.redis, self.ctx.keyspace, record, self.ctx.config.durability
            )
            await self.reconcile()
            self.writable, self.reason = True, "ok"

    async def new_epoch(self, replaces: Meta | None) -> None:
        """Start a new epoch from the in-memory state (call with the lock held)."""
        try:
            epoch, version = await start_epoch(self.ctx, self.writer, self.engine, replaces)
        except (EpochChangedError, StaleSnapshotError) as err:
            self.lose(f"the keyspace changed while republishing: {err}")
            raise StateSupersededError(self.lost or "") from err
        previous, self.epoch = self.epoch, epoch
        self.snapshot_version = version
        self.needs_sync = False
        self.ctx.metrics.snapshot_version.set(version)
        logger.info("epoch %s published at version %d (was %r)", epoch, version, previous)
        if previous and self.on_epoch is not None:
            self.on_epoch(epoch)

    def _fan_out(self, result: TickResult) -> None:
        if self.hub is not None:
            self.hub.publish(result)

    # -- health ----------------------------------------------------------------------------
    def lease_trouble(self, reason: str) -> None:
        """Stop writing until the keeper settles the lease."""
        if self.writable:
            logger.warning("leader %s suspends writes: %s", self.ctx.config.node_id, reason)
        self.writable, self.reason = False, reason
        self.trouble.set()

    def lose(self, reason: str) -> None:
        """This state must be discarded (the node steps down and rebuilds if it leads again)."""
        if self.lost is None:
            logger.warning("leader %s steps down: %s", self.ctx.config.node_id, reason)
            self.lost = reason
        self.writable, self.reason = False, reason
        self.trouble.set()

    def redis_up(self) -> None:
        self.redis_ok = True

    def _redis_failed(self, err: RedisCallError) -> None:
        self.ctx.metrics.redis_errors.inc()
        if err.transient:
            self.redis_ok = False
            self.trouble.set()

    def _check_writable(self) -> None:
        if self.lost is not None:
            raise NotLeaderError(f"not the leader any more: {self.lost}")
        if not self.redis_ok:
            raise RedisUnavailableError("redis unreachable: writes are not accepted")
        if not self.writable:
            raise UnavailableError(f"not accepting writes: {self.reason}")

    async def _guarded(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisCallError as err:
            self._redis_failed(err)
            raise RedisUnavailableError(f"redis unreachable: {err}") from err
        except StateSupersededError as err:
            raise NotLeaderError(f"not the leader any more: {err}") from err
        except LeaseLostError as err:
            self.lease_trouble(f"lost the lease ({err})")
            raise NotLeaderError("not the leader any more (lost the lease)") from err
        except BrokerError as err:
            self.needs_sync = True
            raise UnavailableError(f"cannot write now: {err}") from err

    def ready(self) -> tuple[bool, str]:
        if self.lost is not None:
            return False, "stepping down"
        if not self.redis_ok:
            return False, "redis unreachable"
        if not self.writable:
            return False, self.reason
        if self.hub is not None and self.hub.draining:
            return False, "draining"
        return True, "ok"

    def status(self) -> dict[str, Any]:
        return {
            "role": "leader",
            "node": self.ctx.config.node_id,
            "epoch": self.epoch,
            "version": self.engine.version,
            "term": self.writer.lease.token,
            "snapshot": self.snapshot_version,
        }
