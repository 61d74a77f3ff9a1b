"""Node: one collection in the graph — its store, its key order and its change notifications."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedKeyList

from graph.keys import HKey, same_json, sort_key
from graph.nodes.routing import Routes
from graph.nodes.tracking import Readable

if TYPE_CHECKING:
    from graph.host import Host
    from graph.values import Delta

EMPTY: list[Any] = []


class _SizeKey:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<size>"


# Readers of `size()` depend on this pseudo-key, notified when a key appears or disappears.
SIZE_KEY: Any = _SizeKey()


class Node(Readable, ABC):
    """A collection: maps keys to non-empty lists of values.

    Subclasses store their data as they see fit (`get`, `keys`, `__len__`); every change goes
    through `_remember_old` (before) and `_changed` (after) so that published collections know
    their tick's changes, the consumers that can see the key are scheduled, and dynamic
    readers are invalidated.
    """

    # Slots: a live instance's nodes are the engine's per-instance memory. The rarely used
    # fields (routes, index, tick_old, the edges of Readable) stay None until first needed.
    __slots__ = (
        "engine",
        "id",
        "index",
        "label",
        "routes",
        "scheduled",
        "sources",
        "tick_old",
        "tracked",
    )

    def __init__(self, engine: Host, label: str) -> None:
        self.engine = engine
        self.id = engine.register_node(self)
        self.label = label
        self.sources: tuple[Node, ...] = ()
        self.routes: Routes | None = None
        self.index: SortedKeyList | None = None
        self.tracked = False
        self.tick_old: dict[HKey, list[Any] | None] | None = None
        self.scheduled = False
        self._init_readers()

    def __lt__(self, other: Node) -> bool:  # heap tie-break; ids are unique anyway
        return self.id < other.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.id} {self.label}>"

    # -- storage (subclasses override) --------------------------------------------------
    @abstractmethod
    def get(self, key: HKey) -> list[Any] | None: ...

    @abstractmethod
    def keys(self) -> Iterable[HKey]: ...

    def has(self, key: HKey) -> bool:
        """Whether `key` has values (cheaper than `get` where values are built on demand)."""
        return self.get(key) is not None

    @abstractmethod
    def __len__(self) -> int: ...

    # -- reads by user code ------------------------------------------------------------
    def read(self, key: HKey) -> list[Any]:
        self.track(key)
        return self.get(key) or EMPTY

    def read_size(self) -> int:
        self.track(SIZE_KEY)
        return len(self)

    # -- key order ----------------------------------------------------------------------
    def ensure_index(self) -> SortedKeyList:
        """Maintain a sorted index from now on (take/slice need it; built once, O(n log n))."""
        if self.index is None:
            self.index = SortedKeyList(self.keys(), key=sort_key)
        return self.index

    def ordered_keys(self) -> list[HKey]:
        if self.index is not None:
            return list(self.index)
        return sorted(self.keys(), key=sort_key)

    def _key_added(self, key: HKey) -> None:
        if self.index is not None:
            self.index.add(key)

    def _key_removed(self, key: HKey) -> None:
        if self.index is not None:
            self.index.remove(key)

    # -- consumers ----------------------------------------------------------------------
    def consumer_routes(self) -> Routes:
        routes = self.routes
        if routes is None:
            routes = self.routes = Routes()
        return routes

    def prune_routes(self) -> None:
        """Drop the routes once the last consumer is gone (called after a detach)."""
        if self.routes is not None and self.routes.is_empty():
            self.routes = None

    # -- change protocol ----------------------------------------------------------------
    def _remember_old(self, key: HKey) -> None:
        if self.tracked:
            tick = self.engine.tick
            if tick is not None:
                old = self.tick_old
                if old is None:
                    # Reset to None when the tick ends (Engine._end_tick).
                    old = self.tick_old = {}
                    tick.touched[self.id] = self
                if key not in old:
                    old[key] = self.get(key)

    def _changed(self, key: HKey, delta: Delta, existence_changed: bool) -> None:
        # Only the consumers whose output this key can change (graph/nodes/routing.py).
        routes = self.routes
        if routes is not None:
            routes.notify(key, delta)
        if self._edges:
            self.notify_readers(key)
            if existence_changed:
                self.notify_readers(SIZE_KEY)

    def tick_changes(self) -> list[tuple[HKey, list[Any]]]:
        """This tick's changed keys in key order with their new values ([] = deleted)."""
        out = []
        for key, old in (self.tick_old or {}).items():
            new = self.get(key)
            if not same_json(new, old):
                out.append((key, new or EMPTY))
        out.sort(key=lambda kv: sort_key(kv[0]))
        return out

    # -- scheduling ---------------------------------------------------------------------
    def process(self) -> None:
        """Run this tick's pending work (operators override)."""

    def reset_pending(self) -> None:
        """Forget pending work after an aborted tick (operators override)."""

    def detach(self) -> None:
        """Remove this node from the graph (operators unhook from their sources)."""


class StoredNode(Node):
    """A node whose data is a plain dict key -> values (inputs and most operators)."""

    __slots__ = ("data",)

    def __init__(self, engine: Host, label: str) -> None:
        super().__init__(engine, label)
        self.data: dict[HKey, list[Any]] = {}

    def get(self, key: HKey) -> list[Any] | None:
        return self.data.get(key)

    def keys(self) -> Iterable[HKey]:
        return self.data.keys()

    def __len__(self) -> int:
        return len(self.data)

    def set(self, key: HKey, new: list[Any] | None) -> None:
        """Replace the values at `key` (None or [] deletes it)."""
        if not new:
            new = None
        old = self.data.get(key)
        if same_json(old, new):
            return
        self._remember_old(key)
        self._store(key, new)
        tick = self.engine.tick
        if tick is not None:
            tick.journal.append((self._store, (key, old)))
        self._changed(key, (old or EMPTY, new or EMPTY), old is None or new is None)

    def _store(self, key: HKey, new: list[Any] | None) -> None:
        if new is None:
            if self.data.pop(key, None) is not None:
                self._key_removed(key)
        else:
            if key not in self.data:
                self._key_added(key)
            self.data[key] = new


class InputNode(StoredNode):
    """An input collection: written by the service's clients (or, on a follower, by the
    replication stream)."""

    __slots__ = ()
