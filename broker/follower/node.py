"""The follower role: a mirror of the leader's shared collections, serving every resource.

`follower_node()` runs one: it bootstraps the mirror from Redis (waiting for a leader to initialise
the keyspace if need be), serves docs/protocol.md over it, keeps it in sync
(broker/follower/sync.py), forwards writes to the leader (broker/follower/forwarding.py) and
announces itself with a heartbeat. Shutdown, in order: stop replicating, deregister (so nobody
routes here any more), stop serving (the hub drains its readers), close the clients.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.routing import BaseRoute

from broker.cluster.heartbeat import Heartbeat
from broker.cluster.locator import LeaderLocator
from broker.external.feeds import Feeds, shutdown_services
from broker.follower.forwarding import (
    FORWARD_TIMEOUT_S,
    WriteForwarder,
    forwarding_route,
)
from broker.follower.sync import MirrorSync
from broker.http.errors import HttpError
from broker.json_bytes import JsonDecodeError, dumps, loads
from broker.runtime.clock import now_ms
from broker.runtime.tasks import Supervisor, stop_all
from broker.serving.admin import admin_routes
from broker.serving.config import ServeConfig
from broker.serving.feed_sink import HubSink
from broker.serving.metrics import NodeMetrics
from broker.serving.server import RunningNode, serving
from broker.store.connection import close_client, connect, redacted
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from broker.store.primary import watch_primary
from graph import Service

logger = logging.getLogger("skiff.broker")


class FollowerRole:
    """broker.serving.role.NodeRole of a follower."""

    def __init__(
        self,
        sync: MirrorSync,
        forwarder: WriteForwarder,
        metrics: NodeMetrics,
        config: ServeConfig,
        service: Service,
        node_id: str,
    ) -> None:
        self.sync = sync
        self._forwarder = forwarder
        self.metrics = metrics
        self._config = config
        self._service = service
        self.node_id = node_id

    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        # HTTP writes take forwarding_route (raw bytes and headers passed through); this is the
        # same forwarding for a write made in-process.
        headers = {"content-type": "application/json"}
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        if self._config.control_token is not None:
            headers["authorization"] = f"Bearer {self._config.control_token}"
        reply = await self._forwarder.forward(f"/v1/inputs/{collection}", dumps(entries), headers)
        try:
            body = loads(bytes(reply.body))
        except JsonDecodeError as err:
            raise HttpError(502, f"the leader answered {reply.status_code} without JSON") from err
        if reply.status_code != 200:
            raise HttpError(reply.status_code, str(body.get("error", body)))
        return int(body["version"])

    def ready(self) -> tuple[bool, str]:
        hub = self.sync.hub
        if hub is not None and hub.draining:
            return False, "draining"
        if self.sync.state != "tailing":
            return False, self.sync.reason
        return True, "ok"

    def status(self) -> dict[str, Any]:
        sync = self.sync
        return {
            "role": "follower",
            "node": self.node_id,
            "state": sync.state,
            "epoch": sync.epoch,
            "version": sync.applied,
            "head": sync.head,
            "lag_versions": sync.lag_versions,
            "lag_ms": sync.lag_ms,
            "resyncs": sync.resyncs,
        }

    def routes(self) -> Sequence[BaseRoute]:
        return [
            forwarding_route(self._forwarder, self._config, tuple(self._service.inputs)),
            self.metrics.route(),
            *admin_routes(lambda: self.sync.hub, "follower", lambda: self.sync.epoch,
                          node_id=self.node_id),
        ]  # fmt: skip

    def observe(self) -> None:
        """Bring the metrics up to date (called with every heartbeat)."""
        sync, metrics = self.sync, self.metrics
        metrics.head_version.set(sync.head)
        metrics.applied_version.set(sync.applied)
        metrics.lag_versions.set(sync.lag_versions)
        metrics.lag_ms.set(sync.lag_ms)
        metrics.snapshot_version.set(sync.snapshot)
        metrics.ready.set(1 if self.ready()[0] else 0)
        hub = sync.hub
        if hub is not None:
            metrics.subscribers.set(hub.reader_count)
            metrics.instances.set(hub.instance_count)
            metrics.streams.set(hub.stream_count)


@dataclass
class FollowerNode:
    """A running follower: `url` serves streams (and `control_url` writes), `role.sync` the
    replication state."""

    node: RunningNode
    role: FollowerRole
    heartbeat: Heartbeat

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def control_url(self) -> str:
        return self.node.control_url

    @property
    def sync(self) -> MirrorSync:
        return self.role.sync

    def stop(self) -> None:
        self.node.stop()

    async def wait_closed(self) -> None:
        await self.node.wait_closed()


@asynccontextmanager
async def follower_node(
    service: Service,
    config: ServeConfig,
    *,
    redis_url: str,
    node_id: str,
    advertise_url: str | None = None,
    log_level: str | None = None,
    access_log: bool = False,
) -> AsyncIterator[FollowerNode]:
    """Run a follower of `service` until the block exits (or a signal stops its server)."""
    keyspace = Keyspace(service.name)
    redis = connect(redis_url)
    metrics = NodeMetrics("follower", node_id)
    started_ms = now_ms()
    sync: MirrorSync | None = None

    def failed(name: str, error: BaseException) -> None:
        # The replication loop handles every failure it expects; one it did not leaves the
        # mirror behind: the node stops being ready (the proxy routes elsewhere) and says why.
        if sync is not None:
            sync.halt(f"{name} failed: {error!r}")

    tasks = Supervisor(f"follower {node_id}", on_failure=failed)
    feeds = Feeds(service.external_services, tasks)
    try:
        watching = watch_primary(redis, keyspace.meta, metrics.redis_primary, who=node_id)
        tasks.spawn(watching, name="redis primary watch")
        sync = MirrorSync(
            redis, keyspace, service, config,
            on_redis_error=lambda _: metrics.redis_errors.inc(), feeds=feeds,
        )  # fmt: skip
        logger.info("follower %s bootstrapping from %s", node_id, redacted(redis_url))
        hub = await sync.bootstrap()
        # Instances of a mirror update their external collections locally (no version moves).
        feeds.start(HubSink(lambda: sync.hub if sync is not None else None))
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
            forwarder = WriteForwarder(LeaderLocator(redis, keyspace), client, node_id)
            role = FollowerRole(sync, forwarder, metrics, config, service, node_id)
            async with serving(
                hub, config, node=role, log_level=log_level, access_log=access_log, tasks=tasks
            ) as running_node:
                url = advertise_url or running_node.url

                def record() -> NodeRecord:
                    role.observe()
                    return NodeRecord(
                        node_id=node_id,
                        role="follower",
                        epoch=sync.epoch or "",
                        applied=sync.applied,
                        ts_ms=0,
                        started_ms=started_ms,
                        ready=role.ready()[0],
                        url=url,
                        streams=hub.stream_count,
                        capacity=hub.config.max_streams,
                        draining=hub.draining,
                    )

                heartbeat = Heartbeat(
                    redis, keyspace, node_id, record,
                    on_error=lambda _: metrics.redis_errors.inc(), tasks=tasks,
                )  # fmt: skip
                async with heartbeat:
                    task = tasks.spawn(sync.run(), name=f"follower sync {node_id}")
                    try:
                        yield FollowerNode(running_node, role, heartbeat)
                    finally:
                        await stop_all(task)
    finally:
        feeds.close()
        try:
            await tasks.aclose()
            await shutdown_services(service.external_services)
        finally:
            await close_client(redis)


async def run_follower(
    service: Service,
    config: ServeConfig,
    *,
    redis_url: str,
    node_id: str,
    advertise_url: str | None = None,
    log_level: str | None = "info",
    access_log: bool = False,
) -> None:
    """Serve as a follower until SIGINT or SIGTERM."""
    async with follower_node(
        service, config, redis_url=redis_url, node_id=node_id, advertise_url=advertise_url,
        log_level=log_level, access_log=access_log,
    ) as node:  # fmt: skip
        logger.info(
            "skiff follower %s of %s serving on %s, epoch %s at version %d",
            node_id, service.name, node.url, node.sync.epoch, node.sync.applied,
        )  # fmt: skip
        await node.wait_closed()
