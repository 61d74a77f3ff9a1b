"""What a resource's `instantiate` read, and what its rebuild changed.

A resource may read shared collections while it builds its instance (`get_array`,
`get_unique`, `size`: a session, a friend list, a configuration row) and build something
different from what it read. Those reads are tracked like a mapper's (graph/nodes/tracking.py), with
the instance as the reader; when one of them changes, the instance is built again in the same
tick, and its readers are sent the difference between what they had and what the new build
holds (registry.py). Without this, an instance kept serving what it built from the old
read — and so did every later client with the same params, since they share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from graph.keys import HKey, same_json, sort_key, unkey
from graph.nodes.tracking import Readable, ReadLog, current_reader

if TYPE_CHECKING:
    from graph.changeset import Entry
    from graph.nodes.node import Node
    from graph.tick import Tick


class Registry(Protocol):
    """Who hears that an instance's reads changed (graph/resources/registry.py's Instances)."""

    def stale(self, instance: Any) -> None: ...


class InstanceReads:
    """The reader standing for one instance's `instantiate` (one reader id: 0)."""

    __slots__ = ("instance", "log", "registry")

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # The ResourceInstance, set once it exists (and cleared when it no longer listens).
        self.instance: object | None = None
        self.log = ReadLog(self)

    def reader_id(self, key: HKey) -> int:
        return 0

    def record_read(self, rid: int, store: Readable, key: HKey) -> None:
        self.log.record(rid, store, key)

    def invalidate(self, ids: Iterable[int]) -> None:
        if self.instance is not None:
            self.registry.stale(self.instance)

    @property
    def empty(self) -> bool:
        return not self.log.reads

    def drop(self, tick: Tick | None) -> None:
        """Forget every read (journaled when a tick is open, so an undo puts them back)."""
        self.log.clear(0, tick)


@contextmanager
def reading_as(reads: InstanceReads) -> Iterator[None]:
    """Reads made in this block are the instance's (a mapper run inside keeps its own)."""
    token = current_reader.set((reads, 0))
    try:
        yield
    finally:
        current_reader.reset(token)
        reads.log.seal(0)


def content_before_tick(node: Node) -> dict[HKey, list[Any]]:
    """`node`'s content as it was when the tick began: its changed keys' old values put back
    (an instance's output is tracked, so the tick keeps them)."""
    content = {key: node.get(key) or [] for key in node.keys()}
    for key, old in (node.tick_old or {}).items():
        if old is None:
            content.pop(key, None)
        else:
            content[key] = old
    return content


def difference(before: dict[HKey, list[Any]], node: Node) -> list[Entry]:
    """The entries taking `before` to `node`'s content, in key order ([] for a key gone)."""
    out: list[tuple[HKey, list[Any]]] = []
    for key in node.keys():
        values = node.get(key) or []
        if not same_json(before.get(key), values):
            out.append((key, values))
    out.extend((key, []) for key in before if not node.has(key))
    out.sort(key=lambda kv: sort_key(kv[0]))
    return [(unkey(key), list(values)) for key, values in out]
