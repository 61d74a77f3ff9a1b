"""Structural operators: take, slice and merge (map and reduce live in map_node.py and
reduce_node.py)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

from graph.keys import HKey, sort_key
from graph.nodes.node import Node, StoredNode
from graph.nodes.routing import TOP, Routes

if TYPE_CHECKING:
    from graph.host import Host
    from graph.values import Delta


class Operator(Node):
    """A node computed from source nodes; told of their changes through `source_changed`.

    By default it sees every key of its sources; take and slice register narrower routes, so
    that a change reaches them only when it can change their output (graph/nodes/routing.py)."""

    __slots__ = ()

    def _attach(self, *sources: Node) -> None:
        self.sources = sources
        for source in dict.fromkeys(sources):  # a merge may name one source twice
            source.consumer_routes().add_every(self)

    def detach(self) -> None:
        for source in dict.fromkeys(self.sources):
            if source.routes is not None:
                source.routes.remove_every(self)
                source.prune_routes()

    @abstractmethod
    def source_changed(self, key: HKey, delta: Delta) -> None: ...

    def _schedule(self) -> None:
        tick = self.engine.tick
        if tick is not None:
            tick.schedule(self)


class KeyedWork(Protocol):
    """An operator whose pending work is a set of keys (a dict used as an ordered set, so that
    work runs in a deterministic order; None while there is none): map and the keyed
    structural operators."""

    pending: dict[HKey, None] | None
    scheduled: bool

    def _schedule(self) -> None: ...


def pend(node: KeyedWork, key: HKey) -> None:
    """Add `key` to `node`'s pending work and schedule it in the tick."""
    pending = node.pending
    if pending is None:
        node.pending = {key: None}
    else:
        pending[key] = None
    if not node.scheduled:
        node._schedule()


class KeyedOperator(Operator, StoredNode):
    """An operator whose pending work is the changed source keys (a dict used as an ordered
    set, so that work runs in a deterministic order; None while there is none)."""

    __slots__ = ("pending",)

    def __init__(self, engine: Host, label: str) -> None:
        super().__init__(engine, label)
        self.pending: dict[HKey, None] | None = None

    def source_changed(self, key: HKey, delta: Delta) -> None:
        pend(self, key)

    def reset_pending(self) -> None:
        self.pending = None

    def process(self) -> None:
        pending, self.pending = self.pending, None
        if pending:
            self.refresh(pending)

    @abstractmethod
    def refresh(self, keys: Collection[HKey]) -> None: ...


class SharedOperator(KeyedOperator):
    """A structural operator defined by its source and one argument alone (take, slice).

    Identical requests on one source get one node, refcounted: 10,000 instances that each
    build `ranked.take(10)` share one window, computed, indexed and tracked once. A node that
    create_graph built keeps its first reference for good; instances release theirs.
    """

    __slots__ = ("refs", "signature")

    def __init__(self, engine: Host, source: Node, signature: Hashable) -> None:
        super().__init__(engine, self._label(signature))
        self.refs = 1
        self.signature = signature
        self.sources = (source,)
        source.consumer_routes().share(signature, self)

    @classmethod
    def obtain(cls, source: Node, signature: Hashable) -> Self:
        """The live node `cls(source, signature)`, or a new one. (Signatures of take and slice
        cannot collide: an int and a tuple.)"""
        routes = source.routes
        existing = routes.shared_node(signature) if routes is not None else None
        if isinstance(existing, cls):
            existing.refs += 1
            source.engine.register_reuse(existing)
            return existing
        return cls(source.engine, source, signature)

    @staticmethod
    @abstractmethod
    def _label(signature: Hashable) -> str: ...

    def detach(self) -> None:
        self.refs -= 1
        if self.refs > 0:
            return
        source = self.sources[0]
        routes = source.consumer_routes()
        routes.unshare(self.signature)
        self._unroute(routes)
        source.prune_routes()

    @abstractmethod
    def _unroute(self, routes: Routes) -> None: ...


class TakeNode(SharedOperator):
    """The first `limit` keys of its source in key order; never re-sorts the source.

    Routed by its bound: the sort key of its last key while the window is full, TOP while it
    is not (then any new key enters it). A change past a full window's bound cannot move it.
    """

    __slots__ = ("bound", "source_index")

    def __init__(self, engine: Host, source: Node, limit: Hashable) -> None:
        super().__init__(engine, source, limit)
        self.source_index = source.ensure_index()
        # None: not in the source's windows (take(0), whose window never changes).
        self.bound: tuple[Any, ...] | None = None
        self.refresh(())

    @staticmethod
    def _label(signature: Hashable) -> str:
        return f"take({signature})"

    @property
    def limit(self) -> int:
        return cast(int, self.signature)

    def refresh(self, keys: Collection[HKey]) -> None:
        limit = self.limit
        if limit == 0:
            return
        source = self.sources[0]
        data = self.data
        top = list(self.source_index.islice(0, limit))
        in_top = set(top)
        for key in [k for k in data if k not in in_top]:
            self.set(key, None)
        for key in top:
            if key not in data or key in keys:
                self.set(key, source.get(key))
        bound = sort_key(top[-1]) if len(top) == limit else TOP
        if bound != self.bound:
            tick = self.engine.tick
            if tick is not None:
                tick.journal.append((self._place, (self.bound,)))
            self._place(bound)

    def _place(self, bound: tuple[Any, ...] | None) -> None:
        """Move this window in its source's routes to `bound`."""
        routes = self.sources[0].consumer_routes()
        if self.bound is not None:
            routes.remove_window(self)
        self.bound = bound
        if bound is not None:
            routes.add_window(self)

    def _unroute(self, routes: Routes) -> None:
        if self.bound is not None:
            routes.remove_window(self)
            self.bound = None


Ranges = tuple[tuple[HKey, HKey], ...]


def normalize_ranges(ranges: Iterable[tuple[HKey, HKey]]) -> Ranges:
    """The same keys as the union of `ranges` (inclusive), in one form: sorted, without empty
    ranges, overlapping ones merged. Identical slices share a node; a key lies in one range."""
    spans = sorted(
        (
            (sort_key(low), sort_key(high), low, high)
            for low, high in ranges
            if sort_key(low) <= sort_key(high)
        ),
        key=lambda span: (span[0], span[1]),
    )
    merged: list[tuple[Any, Any, HKey, HKey]] = []
    for span in spans:
        if merged and span[0] <= merged[-1][1]:
            last = merged[-1]
            if span[1] > last[1]:
                merged[-1] = (last[0], span[1], last[2], span[3])
        else:
            merged.append(span)
    return tuple((low, high) for _, _, low, high in merged)


class SliceNode(SharedOperator):
    """The keys of its source within any of its inclusive ranges (normalized, see above).

    Routed by its ranges: a one-key range through the source's points, others through its
    IntervalIndex; so only changes inside a range reach it.
    """

    __slots__ = ()

    def __init__(self, engine: Host, source: Node, ranges: Hashable) -> None:
        super().__init__(engine, source, ranges)
        routes = source.consumer_routes()
        for low, high in self.ranges:
            sl, sh = sort_key(low), sort_key(high)
            if sl == sh:
                routes.add_point(low, self)
                values = source.get(low)
                if values is not None:
                    self.set(low, values)
            else:
                routes.add_span(sl, sh, self)
                for key in list(source.ensure_index().irange_key(sl, sh)):
                    self.set(key, source.get(key))

    @staticmethod
    def _label(signature: Hashable) -> str:
        return "slice"

    @property
    def ranges(self) -> Ranges:
        return cast(Ranges, self.signature)

    def refresh(self, keys: Collection[HKey]) -> None:
        # The routes only hand us keys inside our ranges.
        source = self.sources[0]
        for key in keys:
            self.set(key, source.get(key))

    def _unroute(self, routes: Routes) -> None:
        for low, high in self.ranges:
            sl = sort_key(low)
            if sl == sort_key(high):
                routes.remove_point(low, self)
            else:
                routes.remove_span(sl, self)


class MergeNode(KeyedOperator):
    """The union of its sources; a key's values are concatenated in source order."""

    __slots__ = ()

    def __init__(self, engine: Host, sources: list[Node]) -> None:
        super().__init__(engine, "merge")
        self._attach(*sources)
        seen: dict[HKey, None] = {}
        for source in sources:
            seen.update(dict.fromkeys(source.keys()))
        self.refresh(seen)

    def refresh(self, keys: Collection[HKey]) -> None:
        for key in keys:
            merged: list[Any] = []
            for source in self.sources:
                merged.extend(source.get(key) or ())
            self.set(key, merged)
