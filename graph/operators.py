"""Structural operators: reduce, take, slice and merge (map lives in map_node.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from graph.errors import NotJsonError, UserCodeError
from graph.keys import HKey, check_json, sort_key, unkey
from graph.node import Delta, Node, StoredNode

if TYPE_CHECKING:
    from graph.api import Reducer
    from graph.engine import Engine


class Operator(Node):
    """A node computed from source nodes; told of their changes through `source_changed`."""

    sources: tuple[Node, ...]

    def _attach(self, *sources: Node) -> None:
        self.sources = sources
        for source in sources:
            source.consumers.append(self)

    def detach(self) -> None:
        for source in self.sources:
            source.consumers.remove(self)

    def source_changed(self, key: HKey, delta: Delta) -> None:
        raise NotImplementedError

    def _schedule(self) -> None:
        tick = self.engine.tick
        if tick is not None:
            tick.schedule(self)


class KeyedOperator(Operator, StoredNode):
    """An operator whose pending work is the changed source keys (a dict used as an ordered
    set, so that work runs in a deterministic order)."""

    def __init__(self, engine: Engine, label: str) -> None:
        super().__init__(engine, label)
        self.pending: dict[HKey, None] = {}

    def source_changed(self, key: HKey, delta: Delta) -> None:
        self.pending[key] = None
        self._schedule()

    def reset_pending(self) -> None:
        self.pending.clear()

    def process(self) -> None:
        pending, self.pending = self.pending, {}
        self.refresh(pending)

    def refresh(self, keys: Collection[HKey]) -> None:
        raise NotImplementedError


class ReduceNode(Operator, StoredNode):
    """key -> [accumulator], updated from the (removed, added) values of each changed key."""

    def __init__(self, engine: Engine, source: Node, reducer: Reducer) -> None:
        super().__init__(engine, f"{type(reducer).__name__}")
        self.reducer = reducer
        self.pending: dict[HKey, list[Delta]] = {}
        self._attach(source)
        for key in list(source.keys()):
            self.set(key, [self._fold(key, source.get(key) or [])])

    def source_changed(self, key: HKey, delta: Delta) -> None:
        deltas = self.pending.get(key)
        if deltas is None:
            self.pending[key] = [delta]
            self._schedule()
        else:
            deltas.append(delta)

    def reset_pending(self) -> None:
        self.pending.clear()

    def process(self) -> None:
        pending, self.pending = self.pending, {}
        source = self.sources[0]
        for key, deltas in pending.items():
            if not source.has(key):
                self.set(key, None)
                continue
            current = self.data.get(key)
            if current is None:
                acc = self._fold(key, source.get(key) or [])
            else:
                acc = self._step(key, current[0], deltas)
            self.set(key, [acc])

    def _step(self, key: HKey, acc: Any, deltas: list[Delta]) -> Any:
        reducer = self.reducer
        try:
            for removed, added in deltas:
                for value in removed:
                    acc = reducer.remove(acc, value)
                    if acc is None:
                        # The reducer cannot undo this value: fold the key's values again.
                        return self._fold(key, self.sources[0].get(key) or [])
                for value in added:
                    acc = reducer.add(acc, value)
        except UserCodeError:
            raise
        except Exception as err:
            raise UserCodeError(
                f"reducer {type(reducer).__name__} failed on key {unkey(key)!r}: {err!r}"
            ) from err
        return self._checked(key, acc)

    def _fold(self, key: HKey, values: list[Any]) -> Any:
        reducer = self.reducer
        acc = reducer.initial
        try:
            for value in values:
                acc = reducer.add(acc, value)
        except Exception as err:
            raise UserCodeError(
                f"reducer {type(reducer).__name__}.add failed on key {unkey(key)!r}: {err!r}"
            ) from err
        return self._checked(key, acc)

    def _checked(self, key: HKey, acc: Any) -> Any:
        try:
            check_json(acc)
        except NotJsonError as err:
            raise UserCodeError(
                f"reducer {type(self.reducer).__name__} produced a non-JSON value for key "
                f"{unkey(key)!r}: {err}"
            ) from err
        return acc


class TakeNode(KeyedOperator):
    """The first `n` keys of its source in key order; never re-sorts the source."""

    def __init__(self, engine: Engine, source: Node, limit: int) -> None:
        super().__init__(engine, f"take({limit})")
        self.limit = limit
        self._attach(source)
        self.index_of_source = source.ensure_index()
        self.refresh(())

    def refresh(self, keys: Collection[HKey]) -> None:
        source = self.sources[0]
        data = self.data
        if len(data) == self.limit and self.limit > 0:
            bound = sort_key(self.index_of_source_last())
            if all(k not in data and sort_key(k) > bound for k in keys):
                return  # every change lies past the last key we hold
        top = list(self.index_of_source.islice(0, self.limit)) if self.limit > 0 else []
        in_top = set(top)
        for key in [k for k in data if k not in in_top]:
            self.set(key, None)
        for key in top:
            if key not in data or key in keys:
                self.set(key, source.get(key))

    def index_of_source_last(self) -> HKey:
        # The largest key we hold; our own index is small (n keys), so keep one.
        last: HKey = self.ensure_index()[-1]
        return last


class SliceNode(KeyedOperator):
    """The keys of its source within any of the inclusive ranges."""

    def __init__(self, engine: Engine, source: Node, ranges: list[tuple[HKey, HKey]]) -> None:
        super().__init__(engine, "slice")
        self.ranges = [(sort_key(a), sort_key(b)) for a, b in ranges]
        self._attach(source)
        index = source.ensure_index()
        for low, high in ranges:
            for key in list(index.irange_key(sort_key(low), sort_key(high))):
                self.set(key, source.get(key))

    def contains(self, key: HKey) -> bool:
        sk = sort_key(key)
        return any(low <= sk <= high for low, high in self.ranges)

    def refresh(self, keys: Collection[HKey]) -> None:
        source = self.sources[0]
        for key in keys:
            if self.contains(key):
                self.set(key, source.get(key))


class MergeNode(KeyedOperator):
    """The union of its sources; a key's values are concatenated in source order."""

    def __init__(self, engine: Engine, sources: list[Node]) -> None:
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
