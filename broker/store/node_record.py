"""NodeRecord: a node's heartbeat, stored at keyspace.node(id) and indexed by keyspace.nodes.

`skiff inspect` lists followers with their applied version and lag from these; the proxy finds
the nodes it can route to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from broker.json_bytes import dumps
from broker.store.codec import CodecError, loads

NodeRole = Literal["leader", "candidate", "follower"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node's heartbeat: what `skiff inspect` and the proxy need to know about it."""

    node_id: str
    role: NodeRole
    epoch: str
    applied: int
    ts_ms: int
    started_ms: int
    ready: bool
    url: str | None = None
    #: Load and intake, for the proxy's routing. Optional in the encoding: a field at its
    #: default is omitted, so records of nodes that do not report them read the same.
    #: `streams`: stream ids the node holds; `capacity`: how many it accepts (None: no bound);
    #: `draining`: shutting down, takes no new streams or readers.
    streams: int = 0
    capacity: int | None = None
    draining: bool = False

    def encode(self) -> bytes:
        fields: dict[str, object] = {
            "node_id": self.node_id,
            "role": self.role,
            "epoch": self.epoch,
            "applied": self.applied,
            "ts_ms": self.ts_ms,
            "started_ms": self.started_ms,
            "ready": self.ready,
            "url": self.url,
        }
        if self.streams:
            fields["streams"] = self.streams
        if self.capacity is not None:
            fields["capacity"] = self.capacity
        if self.draining:
            fields["draining"] = True
        return dumps(fields)

    @classmethod
    def decode(cls, data: bytes) -> NodeRecord:
        raw = loads(data)
        try:
            role = raw["role"]
            if role not in ("leader", "candidate", "follower"):
                raise ValueError(f"unknown role {role!r}")
            record = cls(
                node_id=_typed(raw["node_id"], str),
                role=role,
                epoch=_typed(raw["epoch"], str),
                applied=_typed(raw["applied"], int),
                ts_ms=_typed(raw["ts_ms"], int),
                started_ms=_typed(raw["started_ms"], int),
                ready=_typed(raw["ready"], bool),
                url=None if raw.get("url") is None else _typed(raw["url"], str),
                streams=_typed(raw.get("streams", 0), int),
                capacity=None if raw.get("capacity") is None else _typed(raw["capacity"], int),
                draining=_typed(raw.get("draining", False), bool),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CodecError(f"not a node record: {err}") from err
        return record


def _typed(value: object, kind: type[_T]) -> _T:
    # bool is an int subclass: an `applied: true` must not pass as version 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
