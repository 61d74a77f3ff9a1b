"""Routing decisions: which registered node takes a request. Pure functions of a Cluster view.

- A new stream goes to the follower already hosting its `(resource, params)` instance (the
  placement hint) when that follower has room, else to the least loaded follower.
- A re-homed stream goes, among the others, to a follower that has caught up with the client
  (same epoch, applied version at least the client's last event), least loaded first.
- Snapshots and lookups go to any serving follower.
- Writes go to the lease holder.

Followers serve; a leader serves resources too, so with no follower at all the leader takes
streams and reads (a one-node cluster works). Leader candidates in standby serve nothing.
A node is *serving* when its record is ready, not draining, has a URL and an id that can
appear in a stream id.

Load is the node's reported stream count plus the streams this proxy placed on it since that
report (`PlacementLedger`), so a burst of creations between two heartbeats spreads out instead
of piling onto the node that looked emptiest a second ago.
"""

from __future__ import annotations

import random
from collections import defaultdict, deque
from collections.abc import Collection, Mapping
from typing import Final

from broker.runtime import clock
from broker.store.node_record import NodeRecord
from proxy.cluster.membership import Cluster
from proxy.errors import NoNodeError
from proxy.stream_ids import can_host

_LEDGER_HORIZON_MS: Final = 10_000


def serving(node: NodeRecord) -> bool:
    return (
        node.ready
        and not node.draining
        and node.url is not None
        and node.role in ("follower", "leader")
        and can_host(node.node_id)
    )


def stream_hosts(cluster: Cluster, exclude: Collection[str] = ()) -> list[NodeRecord]:
    """The nodes that may host streams: serving followers, else a serving leader."""
    candidates = [n for n in cluster.nodes.values() if serving(n) and n.node_id not in exclude]
    followers = [n for n in candidates if n.role == "follower"]
    return followers or [n for n in candidates if n.role == "leader"]


class PlacementLedger:
    """The streams this proxy placed recently, per node, with the time it placed them."""

    def __init__(self) -> None:
        self._placed: defaultdict[str, deque[int]] = defaultdict(deque)

    def add(self, node_id: str, now_ms: int | None = None) -> None:
        self._placed[node_id].append(clock.now_ms() if now_ms is None else now_ms)

    def pending(self, node: NodeRecord, now_ms: int | None = None) -> int:
        """Placements on `node` its last heartbeat (ts_ms) cannot have counted yet."""
        placed = self._placed.get(node.node_id)
        if not placed:
            return 0
        horizon = (clock.now_ms() if now_ms is None else now_ms) - _LEDGER_HORIZON_MS
        while placed and placed[0] < horizon:
            placed.popleft()
        return sum(1 for ts in placed if ts >= node.ts_ms)


def load(node: NodeRecord, ledger: PlacementLedger | None) -> int:
    return node.streams + (ledger.pending(node) if ledger is not None else 0)


def has_room(node: NodeRecord, ledger: PlacementLedger | None = None) -> bool:
    return node.capacity is None or load(node, ledger) < node.capacity


def choose_stream_host(
    cluster: Cluster,
    *,
    preferred: str | None = None,
    ledger: PlacementLedger | None = None,
    exclude: Collection[str] = (),
    rng: random.Random | None = None,
) -> NodeRecord:
    """The node for a new stream (NoNodeError when every host is full or none serves)."""
    hosts = stream_hosts(cluster, exclude)
    if not hosts:
        raise NoNodeError("no ready follower to host the stream")
    for node in hosts:
        if node.node_id == preferred and has_room(node, ledger):
            return node
    roomy = [n for n in hosts if has_room(n, ledger)]
    if not roomy:
        raise NoNodeError("every follower is at capacity")
    return _least_loaded(roomy, ledger, rng)


def choose_rehome_host(
    cluster: Cluster,
    *,
    exclude: Collection[str],
    since: tuple[str, int] | None = None,
    preferred: str | None = None,
    ledger: PlacementLedger | None = None,
    rng: random.Random | None = None,
) -> NodeRecord:
    """The node taking over a stream whose host is gone.

    `since` is the client's last event `(run, version)`: a host of that epoch that has applied
    at least that version can resume it with an update instead of an init from the past.
    Capacity is a preference here, not a refusal: a live stream must land somewhere."""
    hosts = stream_hosts(cluster, exclude)
    if not hosts:
        raise NoNodeError("no ready follower to take the stream over")
    if since is not None:
        caught_up = [n for n in hosts if n.epoch == since[0] and n.applied >= since[1]]
        hosts = caught_up or hosts
    roomy = [n for n in hosts if has_room(n, ledger)] or hosts
    for node in roomy:
        if node.node_id == preferred:
            return node
    return _least_loaded(roomy, ledger, rng)


def choose_reader(
    cluster: Cluster, *, exclude: Collection[str] = (), rng: random.Random | None = None
) -> NodeRecord:
    """Any node that serves reads (snapshots, lookups)."""
    hosts = stream_hosts(cluster, exclude)
    if not hosts:
        raise NoNodeError("no ready follower to serve the read")
    return (rng or random).choice(hosts)


def choose_writer(cluster: Cluster) -> NodeRecord:
    """The lease holder, when it is a live member with a URL."""
    leader = cluster.leader
    if leader is None or leader.url is None:
        raise NoNodeError("no leader")
    return leader


def find(cluster: Cluster, node_id: str) -> NodeRecord | None:
    """The member `node_id` if it serves (a draining or unready node does not)."""
    node = cluster.nodes.get(node_id)
    return node if node is not None and serving(node) else None


def _least_loaded(
    nodes: list[NodeRecord], ledger: PlacementLedger | None, rng: random.Random | None
) -> NodeRecord:
    loads: Mapping[str, int] = {n.node_id: load(n, ledger) for n in nodes}
    lowest = min(loads.values())
    # Ties broken at random: several proxies with the same view do not all pick one node.
    return (rng or random).choice([n for n in nodes if loads[n.node_id] == lowest])
