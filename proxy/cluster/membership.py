"""Membership: the nodes of a service, as their heartbeats in Redis describe them.

Every node writes its NodeRecord to `node:<id>` with a short PX expiry and scores its id in the
`nodes` index (broker/cluster/heartbeat.py). Every `interval_s` (250 ms by default) membership reads
the index, the records it names and the lease, in two round trips, and replaces its `Cluster` view
whole. A node appears at its first heartbeat and disappears when its record expires (a crash: the
TTL, 3 s) or is deleted (a clean exit): both within one poll of Redis noticing. Entries of the index
without a record are simply not members.

When Redis cannot be read the last view is kept (nodes keep serving what they have) and
`healthy` turns False once no poll has succeeded for `stale_after_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.runtime.clock import now_ms
from broker.runtime.tasks import Supervisor, stop_all
from broker.store.codec import CodecError, LeaseRecord, holder_node
from broker.store.connection import honour_cancellation
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from proxy.errors import ProxyError

logger = logging.getLogger("skiff.proxy")


@dataclass(frozen=True, slots=True)
class Cluster:
    """One reading of membership: every live node record, and the lease holder's node id."""

    nodes: Mapping[str, NodeRecord] = field(default_factory=dict)
    #: The lease holder (`<node id>/<pid>-<random>`, one per process) and its node id.
    holder: str | None = None
    read_ms: int = 0

    @property
    def leader_id(self) -> str | None:
        return None if self.holder is None else holder_node(self.holder)

    @property
    def leader(self) -> NodeRecord | None:
        """The lease holder, when it is a live member."""
        return None if self.leader_id is None else self.nodes.get(self.leader_id)


class Membership:
    """`async with Membership(redis, keyspace) as members: members.cluster ...`"""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        *,
        interval_s: float = 0.25,
        stale_after_s: float = 3.0,
        on_change: Callable[[Cluster, Cluster], None] | None = None,
        tasks: Supervisor | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keyspace
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s
        self._on_change = on_change
        self.cluster = Cluster()
        self._last_ok: float | None = None
        self._changed = asyncio.Condition()
        self._tasks = tasks or Supervisor("proxy membership")
        self._task: asyncio.Task[None] | None = None
        self._failing = 0

    @property
    def healthy(self) -> bool:
        """Whether Redis answered a poll within `stale_after_s`."""
        return self._last_ok is not None and (
            time.monotonic() - self._last_ok <= self._stale_after_s
        )

    async def refresh(self) -> Cluster:
        """Read membership once (raises ProxyError when Redis fails)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrange(self._keys.nodes, 0, -1)
                pipe.get(self._keys.lease)
                ids, lease = await pipe.execute()
            names = [bytes(i).decode(errors="replace") for i in ids]
            raws = await self._redis.mget([self._keys.node(n) for n in names]) if names else []
        except (redis_errors.RedisError, OSError) as err:
            raise ProxyError(f"cannot read membership: {err}") from err
        nodes: dict[str, NodeRecord] = {}
        for name, raw in zip(names, raws, strict=True):
            if raw is None:
                continue  # expired: the node stopped heartbeating
            try:
                record = NodeRecord.decode(raw if isinstance(raw, bytes) else raw.encode())
            except CodecError as err:
                logger.debug("ignoring the record of node %s: %s", name, err)
                continue
            nodes[record.node_id] = record
        cluster = Cluster(nodes, _lease_holder(lease), now_ms())
        self._last_ok = time.monotonic()
        await self._publish(cluster)
        return cluster

    async def wait_for(
        self, predicate: Callable[[Cluster], bool], timeout_s: float
    ) -> Cluster | None:
        """The first view (the current one included) satisfying `predicate`, or None."""
        async with self._changed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: predicate(self.cluster))
            except TimeoutError:
                return None
            return self.cluster

    async def __aenter__(self) -> Membership:
        with contextlib.suppress(ProxyError):
            await self.refresh()
        self._task = self._tasks.spawn(self._run(), name="proxy membership")
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

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.refresh()
                self._failing = 0
            except ProxyError as err:
                self._failing += 1
                level = logging.WARNING if self._failing == 1 else logging.DEBUG
                logger.log(level, "%s (keeping the last view)", err)
            honour_cancellation()
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def _publish(self, cluster: Cluster) -> None:
        previous, self.cluster = self.cluster, cluster
        _log_changes(previous, cluster)
        if self._on_change is not None:
            self._on_change(previous, cluster)
        async with self._changed:
            self._changed.notify_all()


def _lease_holder(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return LeaseRecord.decode(raw).holder
    except CodecError:
        return None


def _log_changes(before: Cluster, after: Cluster) -> None:
    for node_id in after.nodes.keys() - before.nodes.keys():
        record = after.nodes[node_id]
        # A candidate registers before it listens: no URL yet.
        where = f" at {record.url}" if record.url else ""
        logger.info("node %s joined (%s%s)", node_id, _state(record), where)
    for node_id in before.nodes.keys() - after.nodes.keys():
        logger.info("node %s left", node_id)
    for node_id in after.nodes.keys() & before.nodes.keys():
        old, new = before.nodes[node_id], after.nodes[node_id]
        if (old.ready, old.draining, old.role) == (new.ready, new.draining, new.role):
            continue
        if node_id == after.leader_id and _state(new) == "leader" and old.role != "leader":
            continue  # the lease holder's record catching up: "is the leader" said it
        logger.info("node %s is now %s", node_id, _state(new))
    if before.leader_id != after.leader_id and after.leader_id is not None:
        logger.info("node %s is the leader (holds the lease)", after.leader_id)


def _state(record: NodeRecord) -> str:
    """`follower`, `leader, not ready, draining`, ...; a candidate is never ready."""
    serves = record.role != "candidate"
    return (
        record.role
        + (", not ready" if serves and not record.ready else "")
        + (", draining" if record.draining else "")
    )
