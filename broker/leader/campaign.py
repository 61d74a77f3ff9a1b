"""Campaigning for the leader lease, and keeping it.

A candidate polls `LeaderLease.acquire` about four times per TTL. Once it wins, it takes office
(a new keyspace, or a rebuild from snapshot + input log) while a background task keeps renewing
the lease, since a rebuild may outlast one TTL. A leader renews about three times per TTL and,
after each renewal, checks that the keyspace is still its own (meta epoch and head).

When a renewal is refused, the leader stops writing at once and looks at the lease: held by
another node -> its state is not authoritative any more and it steps down; held by nobody (it
expired during a pause or an outage, or Redis lost its data) -> it takes the lease again and
reconciles, which republishes the state under a new epoch when Redis lost it.

A candidate that finds no keyspace does not create one at once: after a FLUSHALL the live
leader must republish its state first, not be beaten by a standby starting from scratch. It
waits `fresh_start_grace_s` (`data_loss_wait_s` when writes existed) and as long as another
node's heartbeat says it leads. Likewise when the keyspace lost history of its epoch (a
failover to a stale replica): it waits as long as another node that leads is alive, and up to
`history_wait_s` (three lease TTLs) when none can be seen (the leader's own heartbeat may be
among what was lost while it reconnects); then it takes office and starts a new epoch from
what Redis still holds, logging what was lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from broker.errors import BrokerError
from broker.external.feeds import Feeds
from broker.leader.config import LeaderContext
from broker.leader.history import find_lost_history, other_records, report
from broker.leader.leadership import Leadership, StateSupersededError
from broker.leader.lease import LeaderLease, LeaseHolder
from broker.leader.rebuild import RebuildError, rebuild
from broker.runtime.backoff import Backoff
from broker.runtime.gc_pause import gc_paused
from broker.runtime.tasks import stop_all
from broker.store.codec import LeaseRecord, Meta
from broker.store.connection import honour_cancellation
from broker.store.fenced import LeaseLostError
from broker.store.reads import read_meta
from broker.store.scripts import RedisCallError
from graph import Engine, Service

logger = logging.getLogger("skiff.broker")


@dataclass
class CandidateStatus:
    """What a candidate reports while it does not lead."""

    state: str = "standby"
    redis_ok: bool = True
    holder: LeaseRecord | None = None
    # The highest head version this candidate has seen in the keyspace: above 0 means
    # acknowledged writes existed, so a vanished keyspace is data loss, not a first start.
    seen_head: int = 0
    # The epoch it last saw and the highest head it saw in it: a Redis that shows this epoch
    # with a lower head lost history (broker/leader/history.py).
    seen_epoch: str = ""
    seen_epoch_head: int = 0

    def saw(self, meta: Meta) -> None:
        self.seen_head = max(self.seen_head, meta.head)
        if meta.epoch != self.seen_epoch:
            self.seen_epoch, self.seen_epoch_head = meta.epoch, 0
        self.seen_epoch_head = max(self.seen_epoch_head, meta.head)


async def win_office(ctx: LeaderContext, lease: LeaderLease, status: CandidateStatus) -> Leadership:
    """Campaign until this candidate holds the lease and its state (runs until cancelled)."""
    config = ctx.config
    backoff = Backoff(cap=config.acquire_interval_s * 2)
    vanished = _Deferral()  # the keyspace is gone
    shortened = _Deferral()  # the keyspace holds a shorter history of its epoch
    while True:
        # redis-py on 3.11 can swallow a cancel that lands mid-command (see redis_conn).
        honour_cancellation()
        try:
            meta = await read_meta(ctx.redis, ctx.keyspace)
            now = time.monotonic()
            if meta is None:
                shortened.reset()
                lost = status.seen_head > 0 or await _state_elsewhere(ctx)
                wait = config.data_loss_wait_s if lost else config.fresh_start_grace_s
                remaining = vanished.remaining(now, wait)
                if remaining > 0 or await _leader_alive_elsewhere(ctx):
                    if lost:
                        vanished.warn_once(
                            "%s: the keyspace vanished but writes existed; waiting up to %.0f s "
                            "for the node holding the state to republish it",
                            config.node_id,
                            config.data_loss_wait_s,
                        )
                    status.redis_ok = True
                    await asyncio.sleep(min(config.acquire_interval_s, max(remaining, 0.05)))
                    continue
                if lost:
                    logger.error(
                        "%s: Redis lost the keyspace and no node republished it within %.0f s: "
                        "starting an empty epoch; writes acknowledged before are lost",
                        config.node_id,
                        config.data_loss_wait_s,
                    )
            else:
                vanished.reset()
                status.saw(meta)
                if await _defer_to_state_holder(ctx, meta, status, shortened, now):
                    status.redis_ok = True
                    await asyncio.sleep(config.acquire_interval_s)
                    continue
            won = await lease.acquire()
            status.redis_ok = True
            backoff.reset()
        except RedisCallError as err:
            ctx.metrics.redis_errors.inc()
            status.redis_ok = False
            logger.debug("campaign of %s: %s", config.node_id, err)
            await asyncio.sleep(backoff.next())
            continue
        if isinstance(won, LeaseHolder):
            status.holder = won.record
            await asyncio.sleep(config.acquire_interval_s)
            continue
        status.state = "taking office"
        try:
            return await _take_office(ctx, lease, won, status)
        except BrokerError as err:
            # RebuildError, LeaseLostError, StateSupersededError, RedisCallError, ...
            logger.warning("%s could not take office: %s", config.node_id, err)
            await _release(lease, won)
        except BaseException:
            await _release(lease, won)
            raise
        finally:
            status.state = "standby"
        await asyncio.sleep(config.acquire_interval_s)


async def keep_lease(ctx: LeaderContext, lead: Leadership, lease: LeaderLease) -> str:
    """Renew the lease of `lead` until it must step down; returns why."""
    config = ctx.config
    backoff = Backoff(first=0.05, cap=config.renew_interval_s)
    last_renewal = time.monotonic()
    delay = config.renew_interval_s
    while lead.lost is None:
        try:
            await asyncio.wait_for(lead.trouble.wait(), timeout=delay)
        except TimeoutError:
            pass
        lead.trouble.clear()
        if lead.lost is not None:
            break
        honour_cancellation()
        try:
            if await lease.renew(lead.writer.lease):
                last_renewal = time.monotonic()
                lead.redis_up()
                if lead.writable and not lead.needs_sync:
                    # A write in flight checks the epoch itself (the append script does), and
                    # renewals must never wait behind a long one (a republish, a catch-up).
                    if not lead.lock.locked():
                        await lead.check_meta()
                else:
                    await lead.resume(lead.writer.lease)
            else:
                lead.lease_trouble("the lease was not renewed")
                holder = await lease.current()
                won = await lease.acquire() if holder is None else holder
                if isinstance(won, LeaseHolder):
                    lead.lose(f"the lease is held by {won.record.holder}")
                    break
                logger.info("%s took the lease again (term %d)", config.node_id, won.token)
                await lead.resume(won)
                last_renewal = time.monotonic()
            backoff.reset()
            delay = config.renew_interval_s
        except RedisCallError as err:
            ctx.metrics.redis_errors.inc()
            lead.redis_ok = False
            if time.monotonic() - last_renewal > config.lease_ttl_s:
                lead.lease_trouble("the lease expired while Redis was unreachable")
                # lease_trouble wakes the keeper (this loop): without clearing, the next wait
                # would return at once and a Redis outage would spin the CPU.
                lead.trouble.clear()
            delay = backoff.next()
            logger.debug("renewal of %s failed: %s", config.node_id, err)
        except StateSupersededError:
            break
        except BrokerError as err:
            # LeaseLostError (the lease moved under a republish), a snapshot that expired, ...
            lead.lease_trouble(str(err))
            lead.trouble.clear()
            delay = backoff.next()
    return lead.lost or "stepped down"


async def _take_office(
    ctx: LeaderContext, lease: LeaderLease, record: LeaseRecord, status: CandidateStatus
) -> Leadership:
    renewing = _renew_forever(lease, record, ctx.config.renew_interval_s)
    renewer = ctx.tasks.spawn(renewing, name="renewals while taking office", report=False)
    office = ctx.tasks.spawn(_office(ctx, record, status), name="taking office", report=False)
    try:
        await asyncio.wait({renewer, office}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await stop_all(*(task for task in (renewer, office) if not task.done()))
    if office.cancelled():
        renewer.result()  # raises what stopped the renewals
        raise LeaseLostError(None, "the lease was lost while taking office")
    return office.result()


async def _office(ctx: LeaderContext, record: LeaseRecord, status: CandidateStatus) -> Leadership:
    """The state of a candidate that just won `record`: a new keyspace, or rebuilt (under a new
    epoch when there is evidence that Redis lost part of the history it rebuilt from)."""
    meta = await read_meta(ctx.redis, ctx.keyspace)
    # Its external collections are subscribed to once the leader serves (node.py).
    feeds = Feeds(ctx.service.external_services, ctx.tasks)
    try:
        if meta is None:
            # Building a large initial state takes seconds of CPU: off the event loop, so the
            # renewals keep the lease meanwhile.
            engine = await asyncio.to_thread(_build, ctx.service, feeds)
            lead = Leadership(ctx, engine, "", record, 0, feeds)
            async with lead.lock:
                await lead.new_epoch(None)
            return lead
        if meta.service != ctx.service.name:
            raise RebuildError(f"the keyspace belongs to service {meta.service!r}")
        engine = await rebuild(ctx.redis, ctx.keyspace, ctx.service, meta, feeds)
        lead = Leadership(ctx, engine, meta.epoch, record, meta.snapshot, feeds)
        seen = status.seen_epoch_head if status.seen_epoch == meta.epoch else 0
        lost = await find_lost_history(ctx, meta, known=seen, witness="this candidate")
        if lost is not None:
            report(ctx, lost)
            async with lead.lock:
                await lead.new_epoch(meta)
        return lead
    except BaseException:
        feeds.close()
        raise


def _build(service: Service, feeds: Feeds) -> Engine:
    with gc_paused():
        return Engine.for_service(service, listener=feeds)


async def _renew_forever(lease: LeaderLease, record: LeaseRecord, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        honour_cancellation()
        if not await lease.renew(record):
            raise LeaseLostError(None, "the lease was lost while taking office")


async def _release(lease: LeaderLease, record: LeaseRecord) -> None:
    try:
        await lease.release(record)
    except RedisCallError as err:
        logger.debug("releasing the lease failed: %s", err)


async def _defer_to_state_holder(
    ctx: LeaderContext, meta: Meta, status: CandidateStatus, deferral: _Deferral, now: float
) -> bool:
    """Whether Redis lost history of its epoch and the node holding it may still republish it
    (broker/leader/history.py), so this candidate must not continue the shorter one.

    A leader whose heartbeat says it leads is waited for as long as it lives. One that cannot
    be seen is waited for too, up to `history_wait_s`: its heartbeat record may be among what
    the failover lost, or expired on the promoted replica, while the leader itself is
    reconnecting with the state."""
    seen = status.seen_epoch_head if status.seen_epoch == meta.epoch else 0
    lost = await find_lost_history(ctx, meta, known=seen)
    if lost is None:
        deferral.reset()
        return False
    if await _leader_alive_elsewhere(ctx):
        return True
    wait = ctx.config.history_wait_s
    if deferral.remaining(now, wait) <= 0:
        return False
    deferral.warn_once(
        "%s: %s; waiting up to %.0f s for the node holding them to republish",
        ctx.config.node_id,
        lost.describe(),
        wait,
    )
    return True


@dataclass
class _Deferral:
    """A candidate holding back because a node may hold state Redis lost: since when, and
    whether it said so (once per episode)."""

    since: float | None = None
    warned: bool = False

    def remaining(self, now: float, wait: float) -> float:
        if self.since is None:
            self.since = now
        return self.since + wait - now

    def warn_once(self, message: str, *args: object) -> None:
        if not self.warned:
            self.warned = True
            logger.warning(message, *args)

    def reset(self) -> None:
        self.since, self.warned = None, False


async def _state_elsewhere(ctx: LeaderContext) -> bool:
    """Whether another node reports state past version 0 (acknowledged writes existed)."""
    return any(r.applied > 0 or r.role == "leader" for r in await other_records(ctx))


async def _leader_alive_elsewhere(ctx: LeaderContext) -> bool:
    """Whether another node's heartbeat says it leads (it holds state Redis may have lost)."""
    return any(r.role == "leader" for r in await other_records(ctx))
