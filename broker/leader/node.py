"""LeaderNode: one `skiff leader` process, a candidate that leads while it holds the lease.

It alternates between two phases, each serving HTTP on the same listening sockets, bound once
(a client that connects while the node switches waits for the next phase, never refused):
- standby: campaign for the lease (broker/leader/campaign.py), serving StandbyRole (503s);
- leading: take office, then serve the service itself with LeadingRole while the lease keeper
  renews the lease and the snapshotter runs. The phase ends when the leadership is lost (the
  server drains its readers, the state is discarded, the node stands by again) or on stop.

On stop, a leader stops accepting writes, lets the write in flight finish, and releases the
lease so a standby takes over at once, before its server shuts down in order. A heartbeat
announces the node (role leader|candidate) throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Final

from broker.cluster.heartbeat import Heartbeat
from broker.cluster.locator import LeaderLocator
from broker.external.feeds import shutdown_services
from broker.leader.campaign import CandidateStatus, keep_lease, win_office
from broker.leader.config import LeaderConfig, LeaderContext
from broker.leader.leadership import Leadership
from broker.leader.lease import LeaderLease
from broker.leader.roles import LeadingRole, StandbyRole
from broker.runtime.clock import now_ms
from broker.runtime.tasks import Supervisor, stop_all
from broker.serving.config import ServeConfig
from broker.serving.feed_sink import HubSink
from broker.serving.hub import Hub
from broker.serving.metrics import NodeMetrics
from broker.serving.role import NodeRole
from broker.serving.server import RunningNode, bind_listeners, serving
from broker.store.codec import unique_holder
from broker.store.connection import close_client, connect
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from broker.store.primary import watch_primary
from broker.store.scripts import RedisCallError
from graph import Engine, Service

logger = logging.getLogger("skiff.broker")

_STANDBY_RUN = "standby"

#: uvicorn's lines as a server starts and stops (its "uvicorn.error" logger).
_SERVER_LIFECYCLE: Final = frozenset(
    {"Started server process [%d]", "Shutting down", "Finished server process [%d]"}
)


class LeaderNode:
    def __init__(
        self,
        ctx: LeaderContext,
        config: ServeConfig,
        *,
        log_level: str | None = None,
        access_log: bool = False,
    ) -> None:
        self.ctx = ctx
        self._config = config
        self._log_level = log_level
        self._access_log = access_log
        self.node_id = ctx.config.node_id
        self.lease = LeaderLease(
            ctx.redis, ctx.keyspace, unique_holder(self.node_id), ctx.config.lease_ttl_ms
        )
        self.status = CandidateStatus()
        self.leadership: Leadership | None = None
        #: How many times this node took office.
        self.terms = 0
        self.url: str | None = None
        self.control_url: str | None = None
        self._locator = LeaderLocator(ctx.redis, ctx.keyspace)
        self._running: RunningNode | None = None
        self._stopping = asyncio.Event()
        self._serving = asyncio.Event()
        self._started_ms = now_ms()
        #: Between two phases: one server has stopped and the next is not serving yet.
        self.switching_phase = False
        self._listeners: list[socket.socket] = []

    @property
    def role(self) -> str:
        return "leader" if self.leadership is not None else "candidate"

    @property
    def advertise_url(self) -> str | None:
        return self.ctx.config.advertise_url or self.url

    def stop(self) -> None:
        """Begin the ordered shutdown (what SIGTERM does); `run` returns when done."""
        self._stopping.set()

    async def wait_stopping(self) -> None:
        """Until `stop()` is called (or the server ends on a signal)."""
        await self._stopping.wait()

    async def wait_serving(self) -> None:
        """Until the node listens (its `url` is known)."""
        await self._serving.wait()

    async def run(self) -> None:
        heartbeat = Heartbeat(
            self.ctx.redis,
            self.ctx.keyspace,
            self.node_id,
            self._record,
            on_error=lambda _: self.ctx.metrics.redis_errors.inc(),
            tasks=self.ctx.tasks,
        )
        # Bound once: every phase serves on these, so no client is refused while the node
        # switches between standby and leading (it waits for the next phase's server).
        self._listeners = bind_listeners(self._config)
        try:
            async with heartbeat:
                while not self._stopping.is_set():
                    lead = await self._stand_by()
                    if lead is None:
                        break
                    await self._lead(lead)
        finally:
            for sock in self._listeners:
                sock.close()
            self._listeners = []

    # -- phases ------------------------------------------------------------------------------
    async def _stand_by(self) -> Leadership | None:
        """Serve as a standby until this node holds office (None: stopping)."""
        hub = Hub(Engine(self.ctx.service), run=_STANDBY_RUN, config=self._config)
        role = StandbyRole(self.node_id, self.status, self._locator, self.ctx.metrics)
        async with self._serve(hub, role) as running:
            campaign = self.ctx.tasks.spawn(
                win_office(self.ctx, self.lease, self.status), name="campaign", report=False
            )
            if await self._until(running, campaign):
                lead = campaign.result()
                if not self._stopping.is_set():
                    return lead
                await self._release(lead)
        return None

    async def _lead(self, lead: Leadership) -> None:
        self.leadership = lead
        self.terms += 1
        hub = Hub(lead.engine, run=lead.epoch, config=self._config, feeds=lead.feeds)
        lead.hub = hub
        lead.on_epoch = lambda epoch: hub.reset_run(epoch)
        sink = HubSink(lambda: lead.hub, write_shared=lead.write_external, lock=lead.lock)
        lead.feeds.start(sink)
        logger.info(
            "%s leads %s: epoch %s, version %d, term %d",
            self.node_id,
            self.ctx.service.name,
            lead.epoch,
            lead.engine.version,
            lead.writer.lease.token,
        )
        tasks = self.ctx.tasks
        keeper = tasks.spawn(keep_lease(self.ctx, lead, self.lease), name="lease keeper")
        snapshots = tasks.spawn(lead.snapshotter.run(), name="snapshot timer")
        try:
            role = LeadingRole(lead, hub, self._config, self.ctx.metrics)
            async with self._serve(hub, role) as running:
                if await self._until(running, keeper):
                    logger.warning("%s steps down: %s", self.node_id, keeper.result())
                else:
                    lead.lose("shutting down")
                    async with lead.lock:  # the write in flight completes first
                        await self._release(lead)
        finally:
            lead.feeds.close()
            await stop_all(keeper, snapshots)
            await lead.snapshotter.close()
            await self._release(lead)
            lead.hub = None
            self.leadership = None

    async def _until(self, running: RunningNode, task: asyncio.Task[Any]) -> bool:
        """Wait for `task`; False when the node stops (or its server ends) first."""
        tasks = self.ctx.tasks
        stop = tasks.spawn(self._stopping.wait(), name="until stopping", report=False)
        closed = tasks.spawn(running.wait_closed(), name="until closed", report=False)
        try:
            await asyncio.wait({task, stop, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_all(stop, closed)
        if task.done():
            return True
        self._stopping.set()  # a server ending on its own (a signal) stops the node
        await stop_all(task)
        return False

    @contextlib.asynccontextmanager
    async def _serve(self, hub: Hub, role: NodeRole) -> AsyncIterator[RunningNode]:
        config = self._config
        async with serving(
            hub,
            config,
            node=role,
            log_level=self._log_level,
            access_log=self._access_log,
            tasks=self.ctx.tasks,
            listeners=self._listeners,
        ) as running:
            self.url, self.control_url = running.url, running.control_url
            self._running = running
            self._serving.set()
            self.switching_phase = False
            try:
                yield running
            finally:
                self._running = None
                self.switching_phase = not self._stopping.is_set()

    async def _release(self, lead: Leadership) -> None:
        try:
            await self.lease.release(lead.writer.lease)
        except RedisCallError as err:
            logger.debug("releasing the lease failed: %s", err)

    # -- heartbeat ---------------------------------------------------------------------------
    def _record(self) -> NodeRecord:
        lead = self.leadership
        hub = lead.hub if lead is not None else None
        ready = lead.ready()[0] if lead is not None else False
        metrics = self.ctx.metrics
        metrics.ready.set(1 if ready else 0)
        if lead is not None:
            metrics.applied_version.set(lead.engine.version)
            metrics.head_version.set(lead.engine.version)
            metrics.snapshot_version.set(lead.snapshot_version)
        if hub is not None:
            metrics.subscribers.set(hub.reader_count)
            metrics.instances.set(hub.instance_count)
            metrics.streams.set(hub.stream_count)
        return NodeRecord(
            node_id=self.node_id,
            role="leader" if lead is not None else "candidate",
            epoch=lead.epoch if lead is not None else "",
            applied=lead.engine.version if lead is not None else 0,
            ts_ms=0,
            started_ms=self._started_ms,
            ready=ready,
            url=self.advertise_url,
            streams=hub.stream_count if hub is not None else 0,
            capacity=hub.config.max_streams if hub is not None else None,
            draining=hub.draining if hub is not None else False,
        )


class _QuietPhaseSwitch(logging.Filter):
    """Drops uvicorn's stop and start lines while a leader switches phases (standby to leading
    and back): its server restarts on the same port, and "Shutting down" would read as the
    process stopping. The first start and the final stop are logged."""

    def __init__(self, node: LeaderNode) -> None:
        super().__init__()
        self._node = node

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self._node.switching_phase and record.msg in _SERVER_LIFECYCLE)


@contextlib.asynccontextmanager
async def leader_node(
    service: Service,
    config: ServeConfig,
    leader_config: LeaderConfig,
    *,
    redis_url: str,
    log_level: str | None = None,
    access_log: bool = False,
) -> AsyncIterator[LeaderNode]:
    """Run a leader candidate of `service` until the block exits; yields once it listens."""
    redis = connect(redis_url)
    metrics = NodeMetrics("leader", leader_config.node_id)
    node: LeaderNode | None = None

    def failed(name: str, error: BaseException) -> None:
        # A background task of a leadership (the snapshots, say) died on an error nobody
        # expected: step down, so that this node or another takes office afresh.
        lead = node.leadership if node is not None else None
        if lead is not None:
            lead.lose(f"{name} failed: {error!r}")

    tasks = Supervisor(f"leader {leader_config.node_id}", on_failure=failed)
    ctx = LeaderContext(redis, Keyspace(service.name), service, leader_config, metrics, tasks)
    node = LeaderNode(ctx, config, log_level=log_level, access_log=access_log)
    quiet = _QuietPhaseSwitch(node)
    server_log = logging.getLogger("uvicorn.error")
    server_log.addFilter(quiet)
    watching = watch_primary(redis, ctx.keyspace.meta, metrics.redis_primary, who=node.node_id)
    tasks.spawn(watching, name="redis primary watch")
    task = tasks.spawn(node.run(), name=f"leader {leader_config.node_id}", report=False)
    try:
        serving_ = tasks.spawn(node.wait_serving(), name="until serving", report=False)
        await asyncio.wait({task, serving_}, return_when=asyncio.FIRST_COMPLETED)
        await stop_all(serving_)
        if task.done():
            task.result()
        yield node
    finally:
        node.stop()
        try:
            await task
        finally:
            try:
                await tasks.aclose()
                await shutdown_services(service.external_services)
            finally:
                server_log.removeFilter(quiet)
                await close_client(redis)
