"""MirrorSync: a follower's replication loop (bootstrap, tail, continuity checks, resync).

States (`MirrorSync.state`); every failure returns to the state that can make progress:

             ┌──────────── gap / trimmed / other epoch ◄──────────┐
             ▼                                                     │
    loading (snapshot) ─────────────► catching up ─────────────► tailing
       │  ▲                                                      │  ▲
       ▼  │ meta back                                 error      ▼  │ Redis back
     waiting (no meta / meta behind us)          disconnected / stalled

- loading: read meta, load the shared part of its current snapshot at version V. The first time
  this creates the hub; later (a resync) it keeps every SSE client: in the same epoch the state
  becomes one ordinary tick at V (readers get the update bringing them there; when V <= applied
  nothing is loaded and the stream is read again, still not ready); in a new epoch a fresh
  engine replaces the old one and the hub's run becomes the new epoch (readers get an init).
- catching up: tailing (below) after a load, a reconnection or a wait, while the node has not yet
  applied the head it saw at the start of a round trip (a backlog of more than one batch).
- tailing: one round trip per step reads meta and `XREAD BLOCK` from `<applied>-0` (exclusive).
  Every entry must be version applied+1 of our epoch; anything else (a gap, a trimmed position,
  an entry of another epoch, meta naming another epoch, versions published but not readable any
  more) leads to a resync. Asking for a resync again without progress backs off.
- waiting: meta is missing (not initialised yet, or Redis lost the data) or behind this node
  (Redis lost versions it applied: from then on it applies nothing more of that epoch, whose
  next versions are another history); the node keeps serving what it has until a leader
  publishes a new epoch.
- disconnected: a Redis call failed; retried with capped exponential backoff, resuming from the
  applied version (the version only moves by applying entry applied+1, so nothing is skipped or
  applied twice).
- stalled: an entry cannot be applied (it names a collection the mirror lacks); retried with
  backoff. (User code of a resource raising on an entry does not stall the mirror: the
  follower's resource instances are dropped and the entry applied; see `_apply`.)

The node is ready (/healthz 200) only while tailing: a follower that restarts, resyncs or comes
back from an outage takes no new streams until it has caught up with the head it saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, Literal

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.external.feeds import Feeds
from broker.follower.mirror import build_mirror, read_mirror_snapshot
from broker.runtime.backoff import Backoff
from broker.runtime.clock import now_ms
from broker.runtime.gc_pause import gc_paused
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.store.codec import CodecError, DeltaEntry, Meta
from broker.store.connection import honour_cancellation
from broker.store.fenced import SnapshotMissingError
from broker.store.keyspace import Keyspace
from broker.store.reads import queue_stream_read, read_meta
from broker.store.scripts import RedisCallError
from graph import GraphError, Service, TickResult, UserCodeError

logger = logging.getLogger("skiff.broker")

SyncState = Literal["loading", "catching up", "tailing", "waiting", "disconnected", "stalled"]

#: How long one XREAD blocks: also how soon a changed meta (new epoch, lost keyspace) is seen.
BLOCK_MS: Final = 1000
#: Entries read per round trip while catching up.
BATCH: Final = 1000


class MirrorSync:
    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        service: Service,
        config: ServeConfig,
        *,
        block_ms: int = BLOCK_MS,
        batch: int = BATCH,
        backoff: Backoff | None = None,
        on_redis_error: Callable[[Exception], None] | None = None,
        feeds: Feeds | None = None,
    ) -> None:
        self._redis = redis
        #: The subscriptions of the external collections the mirror's instances open.
        self._feeds = feeds
        self._keys = keyspace
        self._service = service
        self._config = config
        self._block_ms = block_ms
        self._batch = batch
        self._backoff = backoff or Backoff(first=0.05)
        self._on_redis_error = on_redis_error
        self._resync_wanted = True
        # Redis showed our epoch with a head below our applied version: history was lost.
        self._ahead_of_redis = False
        # The applied version at the last resync request: asking again without progress (the
        # snapshot is not newer and the stream still lacks the next version) backs off.
        self._resync_at: int | None = None
        self.hub: Hub | None = None
        self.epoch: str | None = None
        self.state: SyncState = "loading"
        self.reason = "bootstrapping"
        #: meta's head when last read, and the leader's clock when it was published.
        self.head = 0
        self.head_ms = 0
        self.snapshot = 0
        #: Delay (ms) between the publication of the last applied entry and its application;
        #: 0 once caught up.
        self.lag_ms = 0
        self.resyncs = 0
        self.redis_errors = 0

    @property
    def applied(self) -> int:
        return self.hub.engine.version if self.hub is not None else 0

    @property
    def lag_versions(self) -> int:
        return max(0, self.head - self.applied)

    async def bootstrap(self) -> Hub:
        """Step until the first state is loaded (waiting for a leader if need be)."""
        while self.hub is None:
            await self.step()
            honour_cancellation()
        return self.hub

    async def run(self) -> None:
        """Replicate until cancelled."""
        while True:
            await self.step()
            # redis-py on 3.11 can swallow a cancel that lands mid-command (see redis_conn).
            honour_cancellation()

    async def step(self) -> None:
        """One transition of the state machine; failures are handled here (never raised)."""
        try:
            if self._resync_wanted or self.hub is None:
                await self._resync()
            else:
                await self._tail(self.hub)
        except (RedisCallError, redis_errors.RedisError, OSError) as err:
            self.redis_errors += 1
            if self._on_redis_error is not None:
                self._on_redis_error(err)
            if self.state != "disconnected":
                logger.warning("follower lost Redis: %s", err)
            self._enter("disconnected", "redis unreachable")
        except (CodecError, SnapshotMissingError) as err:
            # A snapshot replaced and expired mid-read, or an entry we cannot decode.
            logger.warning("follower resyncing: %s", err)
            self._resync_wanted = True
            self._enter("loading", f"resync: {err}")
        except GraphError as err:
            logger.error("follower cannot apply version %d: %s", self.applied + 1, err)
            self._enter("stalled", f"cannot apply version {self.applied + 1}: {err}")
        else:
            if self.state in ("tailing", "catching up"):
                self._backoff.reset()
                return
            if self.state == "loading" and self._resync_at != self.applied:
                self._resync_at = self.applied
                return
        await asyncio.sleep(self._backoff.next())

    # -- loading -----------------------------------------------------------------------------
    async def _resync(self) -> None:
        meta = await read_meta(self._redis, self._keys)
        if meta is None:
            self._enter("waiting", "no keyspace: waiting for a leader to initialise it")
            return
        self._saw(meta)
        hub = self.hub
        if hub is not None and meta.epoch == self.epoch and meta.snapshot <= self.applied:
            # No snapshot is newer than what we hold: the stream from `applied` is the way on.
            # Not ready until a read from it succeeds.
            self._resync_wanted = False
            self._enter("loading", "resync: no newer snapshot, reading the stream again")
            return
        self._enter("loading", "loading a snapshot")
        with gc_paused():
            snap = await read_mirror_snapshot(self._redis, self._keys, meta)
            if hub is None:
                engine = build_mirror(self._service, snap, self._feeds)
                self.hub = Hub(engine, run=snap.epoch, config=self._config, feeds=self._feeds)
                logger.info("follower loaded epoch %s at version %d", snap.epoch, snap.version)
            elif snap.epoch != self.epoch:
                hub.reset_run(snap.epoch, build_mirror(self._service, snap, self._feeds))
                self._resynced(f"new epoch {snap.epoch} at version {snap.version}")
            else:
                hub.publish(hub.engine.replace_all(snap.shared, snap.version))
                self._resynced(f"snapshot at version {snap.version}")
        if snap.epoch != self.epoch:
            self._ahead_of_redis = False
        self.epoch = snap.epoch
        self._resync_wanted = False
        self._caught_up_to(meta.head)

    def _resynced(self, what: str) -> None:
        self.resyncs += 1
        logger.info("follower resynced from the %s", what)

    # -- tailing -----------------------------------------------------------------------------
    async def _tail(self, hub: Hub) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            # In this order on one connection: meta is read before the read blocks.
            pipe.hgetall(self._keys.meta)
            queue_stream_read(
                pipe, self._redis, self._keys.deltas, f"{self.applied}-0",
                count=self._batch, block_ms=self._block_ms,
            )  # fmt: skip
            fields, reply = await pipe.execute()
        if not fields:
            self._enter("waiting", "the keyspace is gone (Redis lost data?): waiting for a leader")
            return
        meta = Meta.decode(fields)
        self._saw(meta)
        if meta.epoch != self.epoch:
            self._want_resync(f"epoch changed to {meta.epoch}")
            return
        if meta.head < self.applied:
            # Redis lost versions this node applied (a failover to a stale replica): whatever
            # this epoch publishes next is another history. Keep what we have, apply nothing
            # more of this epoch, and wait for the leader's new epoch (broker/leader/history.py).
            self._ahead_of_redis = True
        if self._ahead_of_redis:
            self._enter("waiting", f"Redis lost versions {meta.head + 1}..{self.applied} of "
                        "this epoch: waiting for the leader to publish a new one")  # fmt: skip
            return
        entries = _entries(reply)
        for _, raw in entries:
            delta = DeltaEntry.decode(raw)
            if delta.epoch != self.epoch or delta.version != self.applied + 1:
                self._want_resync(
                    f"expected version {self.applied + 1} of {self.epoch}, "
                    f"read {delta.version} of {delta.epoch}"
                )
                return
            hub.publish(self._apply(hub, delta))
            self.lag_ms = max(0, now_ms() - delta.ts_ms)
        self.head = max(self.head, self.applied)
        if not entries and meta.head > self.applied:
            # Published, yet nothing after our position is readable: trimmed away.
            self._want_resync(f"versions {self.applied + 1}..{meta.head} are not in the stream")
            return
        if not entries:
            self.lag_ms = 0
        self._caught_up_to(meta.head)

    def _caught_up_to(self, head: int) -> None:
        # Ready once the versions published when this round trip began are applied. A node
        # that was ready stays so while it falls behind under load (its lag is in /metrics);
        # one coming from a restart, a resync or an outage is not ready, and takes no new
        # streams, while it works through a backlog.
        if self.applied >= head or self.state == "tailing":
            self._enter("tailing", "ok")
        else:
            self._enter("catching up", f"applying versions {self.applied + 1}..{head}")

    def _apply(self, hub: Hub, delta: DeltaEntry) -> TickResult:
        try:
            return hub.engine.apply(delta.changes, version=delta.version)
        except UserCodeError as err:
            # The mirror itself runs no user code: a resource instance's did. The version is
            # published and must be applied; the instances go (their clients' reconnects get
            # 404 and create their streams anew), the mirror moves on.
            logger.error(
                "user code of a resource raised on version %d (%s): dropping every resource "
                "instance of this follower", delta.version, err,
            )  # fmt: skip
            hub.drop_instances("user code failed")
            return hub.engine.apply(delta.changes, version=delta.version)

    def halt(self, reason: str) -> None:
        """The loop stopped on an error it could not handle: not ready, with `reason`."""
        self._enter("stalled", reason)

    def _want_resync(self, why: str) -> None:
        logger.info("follower resyncing: %s", why)
        self._resync_wanted = True
        self._enter("loading", f"resync: {why}")

    # -- bookkeeping -------------------------------------------------------------------------
    def _saw(self, meta: Meta) -> None:
        self.head, self.head_ms, self.snapshot = meta.head, meta.head_ms, meta.snapshot

    def _enter(self, state: SyncState, reason: str) -> None:
        self.state = state
        self.reason = reason


def _entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    # RESP2 gives [[stream, [(id, fields), ...]]], RESP3 {stream: [[id, fields], ...]}.
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (item[1] for item in reply)
    return [(entry[0], entry[1]) for entries in streams for entry in entries]
