"""ReduceNode: folds each key's values into one accumulator, from the (removed, added) deltas
of its source, so a changed key never rescans its other values (unless the reducer cannot
remove one: then that key is folded again from `initial`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from graph.errors import NotJsonError, UserCodeError
from graph.keys import HKey, check_json, unkey
from graph.nodes.node import Node, StoredNode
from graph.nodes.operators import Operator

if TYPE_CHECKING:
    from graph.host import Host
    from graph.values import Delta


class ReduceFn(Protocol):
    """What ReduceNode calls: graph.api.Reducer's interface (a protocol, so that operators do
    not import the user-facing API built on them)."""

    initial: Any

    def add(self, acc: Any, value: Any) -> Any: ...

    def remove(self, acc: Any, value: Any) -> Any: ...


class ReduceNode(Operator, StoredNode):
    """key -> [accumulator], updated from the (removed, added) values of each changed key."""

    __slots__ = ("pending", "reducer")

    def __init__(self, engine: Host, source: Node, reducer: ReduceFn) -> None:
        super().__init__(engine, f"{type(reducer).__name__}")
        self.reducer = reducer
        self.pending: dict[HKey, list[Delta]] | None = None
        self._attach(source)
        for key in list(source.keys()):
            self.set(key, [self._fold(key, source.get(key) or [])])

    def source_changed(self, key: HKey, delta: Delta) -> None:
        pending = self.pending
        if pending is None:
            pending = self.pending = {}
        deltas = pending.get(key)
        if deltas is None:
            pending[key] = [delta]
        else:
            deltas.append(delta)
        if not self.scheduled:
            self._schedule()

    def reset_pending(self) -> None:
        self.pending = None

    def process(self) -> None:
        pending, self.pending = self.pending, None
        source = self.sources[0]
        for key, deltas in (pending or {}).items():
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
