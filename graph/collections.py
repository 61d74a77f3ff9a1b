"""EagerCollection: the user-facing handle on a node, with Skip's operator methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph.errors import GraphError, KeyLookupError, UserCodeError
from graph.keys import hkey
from graph.nodes.map_node import MapNode
from graph.nodes.operators import MergeNode, SliceNode, TakeNode, normalize_ranges
from graph.nodes.reduce_node import ReduceNode

if TYPE_CHECKING:
    from graph.nodes.map_node import MapFn
    from graph.nodes.node import Node
    from graph.nodes.reduce_node import ReduceFn

_MISSING: Any = object()


def _construct(cls: type[Any], args: tuple[Any, ...], role: str) -> Any:
    try:
        return cls(*args)
    except GraphError:
        raise
    except Exception as err:
        raise UserCodeError(
            f"{role} {cls.__name__}{args!r} could not be constructed: {err!r}"
        ) from err


class EagerCollection:
    """A collection kept up to date on every tick. Keys and values are JSON."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __repr__(self) -> str:
        return f"EagerCollection({self.node!r})"

    # -- reads (tracked when called from a mapper or a lazy compute) ---------------------------
    def get_array(self, key: Any) -> list[Any]:
        return list(self.node.read(hkey(key)))

    def get_unique(self, key: Any, default: Any = _MISSING) -> Any:
        values = self.node.read(hkey(key))
        if len(values) == 1:
            return values[0]
        if default is not _MISSING:
            return default
        raise KeyLookupError(
            f"collection {self.node.label} has {len(values)} values at key {key!r}, expected one"
        )

    def size(self) -> int:
        return self.node.read_size()

    # -- operators ------------------------------------------------------------------------------
    def map(self, mapper: type[MapFn], *args: Any) -> EagerCollection:
        instance = _construct(mapper, args, "mapper")
        return EagerCollection(MapNode(self.node.engine, self.node, instance))

    def reduce(self, reducer: type[ReduceFn], *args: Any) -> EagerCollection:
        instance = _construct(reducer, args, "reducer")
        return EagerCollection(ReduceNode(self.node.engine, self.node, instance))

    def map_reduce(
        self, mapper: type[MapFn], reducer: type[ReduceFn], *args: Any
    ) -> EagerCollection:
        """`map(mapper, *args).reduce(reducer)`."""
        return self.map(mapper, *args).reduce(reducer)

    def slice(self, start: Any, end: Any) -> EagerCollection:
        """Keys from `start` to `end`, both included, in key order."""
        return self.slices((start, end))

    def slices(self, *ranges: tuple[Any, Any]) -> EagerCollection:
        bounds = normalize_ranges((hkey(a), hkey(b)) for a, b in ranges)
        return EagerCollection(SliceNode.obtain(self.node, bounds))

    def take(self, limit: int) -> EagerCollection:
        if type(limit) is not int or limit < 0:
            raise GraphError(f"take() needs a non-negative int, got {limit!r}")
        return EagerCollection(TakeNode.obtain(self.node, limit))

    def merge(self, *others: EagerCollection) -> EagerCollection:
        return EagerCollection(MergeNode(self.node.engine, [self.node, *(o.node for o in others)]))
