"""Routes: a collection's consumers, indexed by which of its keys can change their output.

A change at key k of a collection is handed to:

- every consumer that sees all keys (map, reduce, merge): a dict used as an ordered set;
- the slices with a one-key range [k, k]: a dict key -> slice(s), O(1);
- the slices with a wider range containing k: an IntervalIndex, O((1 + m) log n);
- the take(n) windows that k can enter or leave: those whose last key is at or after k, or
  that hold fewer than n keys (their bound is TOP). A SortedKeyList by (bound, id): the windows
  reached are a suffix, O(log n + m).

Adding or removing a consumer is O(log n). A take's bound moves as its window changes; the
take moves itself in `windows` (and journals the move, so that an aborted tick puts it back).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Protocol

from sortedcontainers import SortedKeyList

from graph.keys import HKey, sort_key
from graph.nodes.intervals import IntervalIndex

if TYPE_CHECKING:
    from graph.values import Delta


class Operator(Protocol):
    """A consumer of a collection's changes (graph/nodes/operators.py, graph/nodes/map_node.py)."""

    id: int

    def source_changed(self, key: HKey, delta: Delta) -> None: ...


class TakeNode(Operator, Protocol):
    """A take(n) window, routed by its bound (graph/nodes/operators.py)."""

    bound: Any


# Sorts after every sort key (whose first element is a type rank, 0 to 5): the bound of a
# window that is not full, which every change reaches.
TOP: tuple[Any, ...] = (6,)


def _window_key(take: TakeNode) -> tuple[Any, int]:
    return (take.bound, take.id)


class Routes:
    __slots__ = ("every", "points", "shared", "spans", "windows")

    def __init__(self) -> None:
        self.every: dict[Operator, None] | None = None
        # key -> the one slice with the range [key, key], or a list when several have it
        self.points: dict[HKey, Operator | list[Operator]] | None = None
        self.spans: IntervalIndex[Operator] | None = None
        self.windows: SortedKeyList | None = None
        # Structural operators built on this collection, by what defines them, so identical
        # ones are built once (see operators.SharedOperator).
        self.shared: dict[Hashable, Operator] | None = None

    def is_empty(self) -> bool:
        return not (self.every or self.points or self.spans or self.windows or self.shared)

    # -- the change ---------------------------------------------------------------------------
    def notify(self, key: HKey, delta: Delta) -> None:
        every = self.every
        if every:
            for consumer in every:
                consumer.source_changed(key, delta)
        points = self.points
        if points:
            hit = points.get(key)
            if hit is not None:
                if isinstance(hit, list):
                    for consumer in hit:
                        consumer.source_changed(key, delta)
                else:
                    hit.source_changed(key, delta)
        spans, windows = self.spans, self.windows
        if spans or windows:
            sk = sort_key(key)
            if spans:
                for consumer in spans.stab(sk):
                    consumer.source_changed(key, delta)
            if windows:
                for take in windows.irange_key(min_key=(sk,)):
                    take.source_changed(key, delta)

    # -- consumers ----------------------------------------------------------------------------
    def share(self, signature: Hashable, node: Operator) -> None:
        if self.shared is None:
            self.shared = {}
        self.shared[signature] = node

    def shared_node(self, signature: Hashable) -> Operator | None:
        return self.shared.get(signature) if self.shared is not None else None

    def unshare(self, signature: Hashable) -> None:
        if self.shared is not None:
            self.shared.pop(signature, None)

    def add_every(self, consumer: Operator) -> None:
        if self.every is None:
            self.every = {}
        self.every[consumer] = None

    def remove_every(self, consumer: Operator) -> None:
        if self.every is not None:
            self.every.pop(consumer, None)

    def add_point(self, key: HKey, consumer: Operator) -> None:
        points = self.points
        if points is None:
            points = self.points = {}
        hit = points.get(key)
        if hit is None:
            points[key] = consumer
        elif isinstance(hit, list):
            hit.append(consumer)
        else:
            points[key] = [hit, consumer]

    def remove_point(self, key: HKey, consumer: Operator) -> None:
        points = self.points
        if points is None:
            return
        hit = points.get(key)
        if hit is consumer:
            del points[key]
        elif isinstance(hit, list):
            hit.remove(consumer)  # the few slices sharing one point, not all of them
            if len(hit) == 1:
                points[key] = hit[0]

    def add_span(self, low: Any, high: Any, consumer: Operator) -> None:
        if self.spans is None:
            self.spans = IntervalIndex()
        self.spans.add(low, high, consumer.id, consumer)

    def remove_span(self, low: Any, consumer: Operator) -> None:
        if self.spans is not None:
            self.spans.remove(low, consumer.id)

    def add_window(self, take: TakeNode) -> None:
        if self.windows is None:
            self.windows = SortedKeyList(key=_window_key)
        self.windows.add(take)

    def remove_window(self, take: TakeNode) -> None:
        if self.windows is not None:
            self.windows.remove(take)
