"""The cluster status behind the proxy's `/_skiff/` page: one JSON document, read every second.

The replication state comes from `broker.cluster.inspect.read_cluster` (what `skiff inspect` prints:
leader and term, epoch, head, every node's applied version and lag). The proxy adds what only it
knows (its membership view: streams, capacity, draining) and what only the nodes know (live
resource instances and readers, scraped from each serving node's `/metrics`).

Readings are shared: every status viewer of one proxy gets the same document, computed at most
once per `max_age_s`, so a dozen open status pages cost one Redis pipeline and one scrape per
node a second.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Final

from redis.exceptions import RedisError
from sse_starlette import ServerSentEvent

from broker.cluster.inspect import ClusterView, read_cluster
from broker.json_bytes import dumps
from broker.store.node_record import NodeRecord
from broker.types import Json
from proxy.cluster.routing import serving
from proxy.errors import NodeUnavailableError
from proxy.gateway import Gateway

_READ_TIMEOUT_S: Final = 1.0
_SCRAPED: Final = {
    "instances": re.compile(rb"^skiff_resource_instances\{[^}]*\} ([0-9.eE+-]+)$", re.M),
    "readers": re.compile(rb"^skiff_subscribers\{[^}]*\} ([0-9.eE+-]+)$", re.M),
}


class StatusSource:
    """The latest cluster status of one proxy, recomputed when older than `max_age_s`."""

    def __init__(self, gateway: Gateway, max_age_s: float = 0.5) -> None:
        self._gateway = gateway
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._latest: dict[str, Json] | None = None
        self._read_at = 0.0

    async def read(self) -> dict[str, Json]:
        async with self._lock:
            now = time.monotonic()
            if self._latest is None or now - self._read_at >= self._max_age_s:
                self._latest = await cluster_status(self._gateway)
                self._read_at = time.monotonic()
            return self._latest

    async def events(self, every_s: float = 1.0) -> AsyncIterator[ServerSentEvent]:
        """SSE `status` events, one every `every_s`, until the proxy stops."""
        stopping = self._gateway.stopping
        while not stopping.is_set():
            status = await self.read()
            yield ServerSentEvent(dumps(status).decode(), event="status", sep="\n")
            try:
                await asyncio.wait_for(stopping.wait(), every_s)
            except TimeoutError:
                pass


async def cluster_status(gateway: Gateway) -> dict[str, Json]:
    """The document the status page renders (see docs/proxy.md, "The status page")."""
    membership = gateway.membership
    keyspace = gateway.keyspace
    view: ClusterView | None = None
    redis_error: str | None = None
    if keyspace is None:
        redis_error = "no service"
    else:
        try:
            view = await asyncio.wait_for(read_cluster(gateway.redis, keyspace), _READ_TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as err:
            redis_error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    known = membership.cluster.nodes
    scraped = await _scrape(gateway, [n for n in known.values() if serving(n)])
    base = view.to_json() if view is not None else {}
    nodes = []
    seen: set[str] = set()
    for node in base.get("nodes", []):
        seen.add(node["node_id"])
        nodes.append(_node_json(node, known.get(node["node_id"]), scraped))
    for node_id, record in known.items():  # the proxy's last view when Redis cannot be read
        if node_id not in seen:
            nodes.append(_node_json({"node_id": node_id, "alive": True}, record, scraped))
    nodes.sort(key=lambda n: (_ROLE_ORDER.get(n.get("role") or "", 9), n["node_id"]))
    if gateway.config.control_token is not None:
        # Node addresses are for token holders (`/v1/admin/nodes`); the page needs no token.
        for node in nodes:
            node["url"] = None
    return {
        "service": keyspace.service if keyspace is not None else None,
        "time_ms": int(time.time() * 1000),
        "redis": {"ok": view is not None, "error": redis_error},
        "membership_ok": membership.healthy,
        "leader": base.get("leader") or _leader_from(membership.cluster.leader_id),
        "term": base.get("term"),
        "epoch": base.get("epoch"),
        "head": base.get("head"),
        "head_ms": base.get("head_ms"),
        "snapshot": base.get("snapshot"),
        "streams": base.get("streams"),
        "nodes": nodes,
    }


_ROLE_ORDER: Final = {"leader": 0, "candidate": 1, "follower": 2}


def _leader_from(node_id: str | None) -> Json:
    return None if node_id is None else {"node_id": node_id, "term": None}


def _node_json(
    node: dict[str, Json], record: NodeRecord | None, scraped: Mapping[str, dict[str, int]]
) -> dict[str, Json]:
    out = dict(node)
    if record is not None:
        out.setdefault("role", record.role)
        out.setdefault("applied", record.applied)
        out.setdefault("url", record.url)
        out["ready"] = record.ready
        out["streams"] = record.streams
        out["capacity"] = record.capacity
        out["draining"] = record.draining
        out["serving"] = serving(record)
    else:
        out.update(streams=None, capacity=None, draining=False, serving=False)
    metrics = scraped.get(node["node_id"], {})
    out["instances"] = metrics.get("instances")
    out["readers"] = metrics.get("readers")
    return out


async def _scrape(gateway: Gateway, nodes: list[NodeRecord]) -> dict[str, dict[str, int]]:
    async def one(node: NodeRecord) -> tuple[str, dict[str, int]]:
        try:
            reply = await asyncio.wait_for(
                gateway.upstream.request(node, "GET", "/metrics"), _READ_TIMEOUT_S
            )
        except (NodeUnavailableError, TimeoutError):
            return node.node_id, {}
        if reply.status != 200:
            return node.node_id, {}
        found = {}
        for name, pattern in _SCRAPED.items():
            match = pattern.search(reply.body)
            if match is not None:
                found[name] = int(float(match.group(1)))
        return node.node_id, found

    return dict(await asyncio.gather(*(one(n) for n in nodes)))
