"""merge(*others): the union of collections, values concatenated in collection order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graph import Engine, Mapper, Values

MakeEngine = Callable[..., Engine]


class Double(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for v in values:
            yield key, v * 2


def test_union_with_values_in_collection_order(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"m": ins["b"].merge(ins["a"], ins["c"])},
        a=[(1, ["a1"]), (2, ["a2"])],
        b=[(2, ["b2", "b2'"]), (3, ["b3"])],
        c=[(2, ["c2"])],
    )
    assert engine.collection_entries("m") == [
        (1, ["a1"]),
        (2, ["b2", "b2'", "a2", "c2"]),
        (3, ["b3"]),
    ]
    result = engine.apply({"a": [(2, [])], "c": [(3, ["c3"]), (4, ["c4"])]})
    assert result.shared.changes["m"] == (
        (2, ["b2", "b2'", "c2"]),
        (3, ["b3", "c3"]),
        (4, ["c4"]),
    )
    result = engine.apply({"b": [(2, []), (3, [])], "c": [(2, []), (3, [])]})
    assert result.shared.changes["m"] == ((2, []), (3, []))
    assert engine.collection_entries("m") == [(1, ["a1"]), (4, ["c4"])]


def test_merge_with_itself(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda ins, ctx: {"m": ins["a"].merge(ins["a"])}, a=[(1, ["x"])])
    assert engine.collection_entries("m") == [(1, ["x", "x"])]
    engine.apply({"a": [(1, ["y"]), (2, ["z"])]})
    assert engine.collection_entries("m") == [(1, ["y", "y"]), (2, ["z", "z"])]


def test_merge_of_nothing_else_is_a_copy(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda ins, ctx: {"m": ins["a"].merge()}, a=[(1, ["x"])])
    engine.apply({"a": [(2, ["y"])]})
    assert engine.collection_entries("m") == [(1, ["x"]), (2, ["y"])]


def test_merge_of_derived_collections(make_engine: MakeEngine) -> None:
    def create_graph(ins: Any, ctx: Any) -> dict[str, Any]:
        doubled = ins["a"].map(Double)
        return {"m": doubled.merge(ins["a"]).take(2), "doubled": doubled}

    engine = make_engine(create_graph, a=[(1, [1]), (2, [2]), (3, [3])])
    assert engine.collection_entries("m") == [(1, [2, 1]), (2, [4, 2])]
    engine.apply({"a": [(0, [10]), (2, [])]})
    assert engine.collection_entries("m") == [(0, [20, 10]), (1, [2, 1])]
