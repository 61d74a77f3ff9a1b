"""What `skiff inspect` reports: a service's replication state, read from Redis alone.

`read_cluster()` gathers it (leader and term, epoch, head, stream lengths, snapshot, every
node's heartbeat with its lag), `render_text()` prints it for an operator, `ClusterView.to_json()`
for tools. Reading never writes: inspecting a live cluster is safe.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from broker.store.codec import CodecError, DeltaEntry, LeaseRecord, Meta
from broker.store.keyspace import Keyspace, stream_id_of, version_of
from broker.store.node_record import NodeRecord


@dataclass(frozen=True, slots=True)
class LeaderView:
    node_id: str
    holder: str
    term: int
    lease_ttl_ms: int


@dataclass(frozen=True, slots=True)
class StreamView:
    length: int
    first: int | None
    last: int | None


@dataclass(frozen=True, slots=True)
class NodeView:
    node_id: str
    last_seen_ms: int
    alive: bool
    role: str | None = None
    epoch: str | None = None
    applied: int | None = None
    lag_versions: int | None = None
    lag_ms: int | None = None
    ready: bool | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterView:
    service: str
    now_ms: int
    leader: LeaderView | None
    meta: Meta | None
    deltas: StreamView
    inputs: StreamView
    nodes: tuple[NodeView, ...]

    def to_json(self) -> dict[str, Any]:
        meta = self.meta
        return {
            "service": self.service,
            "now_ms": self.now_ms,
            "leader": dataclasses.asdict(self.leader) if self.leader else None,
            "term": self.leader.term if self.leader else None,
            "epoch": meta.epoch if meta else None,
            "head": meta.head if meta else None,
            "head_ms": meta.head_ms if meta else None,
            "snapshot": meta.snapshot if meta else None,
            "snapshot_ms": meta.snapshot_ms if meta else None,
            "shared": list(meta.shared) if meta else None,
            "inputs": list(meta.inputs) if meta else None,
            "streams": {
                "deltas": dataclasses.asdict(self.deltas),
                "inputs": dataclasses.asdict(self.inputs),
            },
            "nodes": [dataclasses.asdict(node) for node in self.nodes],
        }


async def read_cluster(redis: Redis, keyspace: Keyspace) -> ClusterView:
    """Everything `skiff inspect` shows about one service. Raises redis errors."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.hgetall(keyspace.meta)
        pipe.get(keyspace.lease)
        pipe.pttl(keyspace.lease)
        pipe.xlen(keyspace.deltas)
        pipe.xlen(keyspace.inputs)
        pipe.xrange(keyspace.deltas, count=1)
        pipe.xrevrange(keyspace.deltas, count=1)
        pipe.xrange(keyspace.inputs, count=1)
        pipe.xrevrange(keyspace.inputs, count=1)
        pipe.zrange(keyspace.nodes, 0, -1, withscores=True)
        replies = await pipe.execute()
    server_time, meta_raw, lease_raw, lease_ttl, n_deltas, n_inputs = replies[:6]
    first_d, last_d, first_i, last_i, members = replies[6:]
    now_ms = int(server_time[0]) * 1000 + int(server_time[1]) // 1000
    meta = Meta.decode(meta_raw) if meta_raw else None
    leader = None
    if lease_raw is not None:
        lease = LeaseRecord.decode(lease_raw)
        leader = LeaderView(lease.node_id, lease.holder, lease.token, int(lease_ttl))
    node_ids = [_text(member) for member, _ in members]
    records = await redis.mget([keyspace.node(n) for n in node_ids]) if node_ids else []
    nodes = []
    for (member, score), raw in zip(members, records, strict=True):
        nodes.append(await _node_view(redis, keyspace, meta, _text(member), int(score), raw))
    return ClusterView(
        service=keyspace.service,
        now_ms=now_ms,
        leader=leader,
        meta=meta,
        deltas=StreamView(int(n_deltas), _version(first_d), _version(last_d)),
        inputs=StreamView(int(n_inputs), _version(first_i), _version(last_i)),
        nodes=tuple(nodes),
    )


async def _node_view(
    redis: Redis, keyspace: Keyspace, meta: Meta | None, node_id: str, seen: int, raw: Any
) -> NodeView:
    if raw is None:
        return NodeView(node_id, seen, alive=False)
    try:
        record = NodeRecord.decode(raw)
    except CodecError:
        return NodeView(node_id, seen, alive=False)
    lag_versions = lag_ms = None
    if meta is not None and record.epoch == meta.epoch:
        lag_versions = max(0, meta.head - record.applied)
        lag_ms = 0 if lag_versions == 0 else await _lag_ms(redis, keyspace, record)
    return NodeView(
        node_id=node_id,
        last_seen_ms=record.ts_ms,
        alive=True,
        role=record.role,
        epoch=record.epoch,
        applied=record.applied,
        lag_versions=lag_versions,
        lag_ms=lag_ms,
        ready=record.ready,
        url=record.url,
    )


async def _lag_ms(redis: Redis, keyspace: Keyspace, record: NodeRecord) -> int | None:
    # How long the oldest version the node had not applied had been published when it reported.
    entry_id = stream_id_of(record.applied + 1)
    found: Any = await redis.xrange(keyspace.deltas, entry_id, entry_id)
    if not found:
        return None  # trimmed: the node needs a resync
    return max(0, record.ts_ms - DeltaEntry.decode(found[0][1]).ts_ms)


def _version(reply: Any) -> int | None:
    return version_of(reply[0][0]) if reply else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def render_text(view: ClusterView) -> str:
    """The report an operator reads."""
    meta, now = view.meta, view.now_ms
    lines = [f"service   {view.service}"]
    if view.leader is None:
        lines.append("leader    none (no lease held)")
    else:
        lead = view.leader
        lines.append(
            f"leader    {lead.node_id}  term {lead.term}  lease {lead.lease_ttl_ms} ms left  "
            f"(holder {lead.holder})"
        )
    if meta is None:
        lines.append("epoch     none (keyspace not initialised, or lost)")
    else:
        lines += [
            f"epoch     {meta.epoch}  (began {_ago(now, meta.created_ms)})",
            f"head      {meta.head}  (published {_ago(now, meta.head_ms)})",
            f"snapshot  {meta.snapshot}  (published {_ago(now, meta.snapshot_ms)})",
            f"shared    {', '.join(meta.shared) or '-'}",
        ]
    for name, stream in (("deltas", view.deltas), ("inputs", view.inputs)):
        span = f"versions {stream.first}..{stream.last}" if stream.length else "empty"
        lines.append(f"{name:<9} {stream.length} entries ({span})")
    lines.append(f"nodes     {sum(n.alive for n in view.nodes)} alive")
    header = ("NODE", "ROLE", "APPLIED", "LAG", "LAG_MS", "READY", "URL", "SEEN")
    rows = [header, *(_node_row(node, now) for node in view.nodes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def _node_row(node: NodeView, now: int) -> tuple[str, ...]:
    if not node.alive:
        return (node.node_id, "gone", "-", "-", "-", "-", "-", _ago(now, node.last_seen_ms))
    return (
        node.node_id,
        node.role or "-",
        _opt(node.applied),
        _opt(node.lag_versions) if node.lag_versions is not None else f"epoch {node.epoch}",
        _opt(node.lag_ms),
        "yes" if node.ready else "no",
        node.url or "-",
        _ago(now, node.last_seen_ms),
    )


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _ago(now: int, then_ms: int) -> str:
    if then_ms <= 0:
        return "never"
    delta = max(0, now - then_ms)
    if delta < 10_000:
        return f"{delta} ms ago"
    if delta < 3_600_000:
        return f"{delta // 1000} s ago"
    return f"{delta // 3_600_000} h ago"
