"""Gateway: the proxy's connections and components, opened and closed as one unit.

    async with Gateway(config) as gateway:
        app = create_app(gateway)

Opening: Redis (resolving the service when the config names none), membership (its first
reading done before the gateway is used), the keepalive of relayed streams, the HTTP client to
nodes. Closing, in reverse, after `stop_streams()` has ended every relayed stream so their
clients reconnect through another proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import TypeVar

from redis.asyncio import Redis

from broker.http.access import Access
from broker.runtime.tasks import Supervisor
from broker.store.connection import close_client, connect
from broker.store.discovery import find_services
from broker.store.keyspace import Keyspace
from broker.store.primary import watch_primary
from broker.store.scripts import RedisCallError
from proxy.cluster.membership import Cluster, Membership
from proxy.cluster.registry import KeepAlive, StreamRegistry
from proxy.cluster.routing import serving
from proxy.config import ProxyConfig
from proxy.errors import ProxyError
from proxy.metrics import ProxyMetrics
from proxy.passthrough import RelayBoard
from proxy.rate_limits import RateLimiter
from proxy.streams import StreamService
from proxy.upstream import Upstream
from proxy.writes import WriteForwarder

logger = logging.getLogger("skiff.proxy")

_C = TypeVar("_C")

# Concurrent Redis calls of one proxy: a burst of stream creations waits for a connection
# rather than failing.
_REDIS_POOL = 64


# Longer than a node's heartbeat interval (1 s) plus a membership poll (0.25 s).
_DEPARTURE_GRACE_S = 2.0


class Gateway:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        #: Who may do what: the control token and identity tokens (broker/http/access.py).
        self.access = Access(config.control_token, config.jwt)
        self.metrics = ProxyMetrics()
        #: Set at shutdown: every relayed stream ends (its client reconnects elsewhere).
        self.stopping = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        #: Owns the proxy's background tasks (membership poll, keepalive).
        self.tasks = Supervisor("proxy")
        self._redis: Redis | None = None
        self._membership: Membership | None = None
        self._keepalive: KeepAlive | None = None
        self._upstream: Upstream | None = None
        self._streams: StreamService | None = None
        self._writes: WriteForwarder | None = None
        self._rates: RateLimiter | None = None
        self.keyspace: Keyspace | None = None
        #: The relayed streams, ended by node when it leaves, all of them at shutdown.
        self.relays = RelayBoard()
        self._departing: set[str] = set()

    # The components exist once the gateway is open; using them earlier is a programming error.
    @property
    def membership(self) -> Membership:
        return _opened(self._membership)

    @property
    def redis(self) -> Redis:
        return _opened(self._redis)

    @property
    def keepalive(self) -> KeepAlive:
        return _opened(self._keepalive)

    @property
    def upstream(self) -> Upstream:
        return _opened(self._upstream)

    @property
    def streams(self) -> StreamService:
        return _opened(self._streams)

    @property
    def writes(self) -> WriteForwarder:
        return _opened(self._writes)

    @property
    def rates(self) -> RateLimiter:
        return _opened(self._rates)

    def ready(self) -> tuple[bool, str]:
        """(ready, reason) for /healthz."""
        if self.stopping.is_set():
            return False, "shutting down"
        membership = self.membership
        if not membership.healthy:
            return False, "redis unreachable"
        if not any(serving(n) for n in membership.cluster.nodes.values()):
            return False, "no ready node"
        return True, "ok"

    def stop_streams(self) -> None:
        self.stopping.set()
        self.relays.stop()

    def _membership_changed(self, before: Cluster, after: Cluster) -> None:
        for node_id in before.nodes.keys() - after.nodes.keys() - self._departing:
            # Not at once: a FLUSHALL erases every node record and the nodes write theirs
            # again within a heartbeat; only a node still missing after the grace is gone.
            self._departing.add(node_id)
            asyncio.get_running_loop().call_later(
                _DEPARTURE_GRACE_S, self._confirm_departure, node_id
            )

    def _confirm_departure(self, node_id: str) -> None:
        self._departing.discard(node_id)
        if self._membership is not None and node_id in self._membership.cluster.nodes:
            return
        ended = self.relays.end_node(node_id)
        if ended:
            logger.info("node %s left: ended %d relayed stream(s)", node_id, ended)

    async def __aenter__(self) -> Gateway:
        config = self.config
        try:
            redis = self._redis = connect(
                config.redis_url, timeout_s=config.connect_timeout_s, pool_size=_REDIS_POOL
            )
            self._stack.push_async_callback(close_client, redis)
            self._stack.push_async_callback(self.tasks.aclose)
            service = config.service or await _discover(redis)
            self.keyspace = keyspace = Keyspace(service)
            watching = watch_primary(redis, keyspace.meta, self.metrics.redis_primary, who="proxy")
            self.tasks.spawn(watching, name="redis primary watch")
            self._membership = await self._stack.enter_async_context(
                Membership(
                    redis,
                    keyspace,
                    interval_s=config.poll_interval_s,
                    on_change=self._membership_changed,
                    tasks=self.tasks,
                )
            )
            registry = StreamRegistry(redis, keyspace, config.stream_ttl_ms)
            self._keepalive = await self._stack.enter_async_context(
                KeepAlive(registry, config.stream_ttl_s / 3, tasks=self.tasks)
            )
            self._upstream = Upstream(
                token=config.control_token,
                connect_timeout_s=config.connect_timeout_s,
                request_timeout_s=config.request_timeout_s,
                observe=lambda method, s: self.metrics.upstream_seconds.labels(method).observe(s),
            )
            self._stack.push_async_callback(self._upstream.aclose)
            self._streams = StreamService(
                self._membership, registry, self._upstream, self.metrics, self.access
            )
            self._writes = WriteForwarder(
                self._membership, self._upstream, self.metrics, leader_wait_s=config.leader_wait_s
            )
            membership = self._membership
            self._rates = RateLimiter(
                redis,
                keyspace,
                {"streams": config.stream_rate, "writes": config.write_rate},
                redis_ok=lambda: membership.healthy,
            )
        except BaseException:
            await self._stack.aclose()
            raise
        logger.info("proxy for service %s", service)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_streams()
        await self._stack.aclose()


async def _discover(redis: Redis, every_s: float = 1.0) -> str:
    """The one service registered in this Redis, waiting for its first node if need be."""
    waited = False
    while True:
        try:
            services = await find_services(redis, "nodes")
        except RedisCallError as err:
            raise ProxyError(f"cannot scan Redis for services: {err}") from err
        if len(services) == 1:
            return services[0]
        if len(services) > 1:
            raise ProxyError(
                f"several services in this Redis ({', '.join(services)}): choose one with --service"
            )
        if not waited:
            logger.info("no service registered in Redis yet; waiting for a node")
            waited = True
        await asyncio.sleep(every_s)


def _opened(component: _C | None) -> _C:
    if component is None:
        raise ProxyError("the gateway is not open")
    return component
