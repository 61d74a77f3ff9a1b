"""take(n), slice(a, b) (inclusive) and slices(*ranges), all in docs/protocol.md's key order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graph import Engine, GraphError, Mapper, Values

MakeEngine = Callable[..., Engine]


class Rekey(Mapper):
    """Values {"k": new_key} -> new_key: source key (an index that moves keys around)."""

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for value in values:
            yield value["k"], key


def _keys(engine: Engine, name: str) -> list[Any]:
    return [k for k, _ in engine.collection_entries(name)]


def test_take_follows_key_order(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"top": ins["in"].take(3)},
        **{"in": [("b", [1]), (2, [1]), ([0], [1]), (None, [1]), ("a", [1])]},
    )
    assert engine.collection_entries("top") == [(None, [1]), (2, [1]), ("a", [1])]


def test_take_updates(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"top": ins["in"].take(2)}, **{"in": [(k, [k]) for k in (10, 20, 30)]}
    )
    # Past the last held key: nothing changes.
    result = engine.apply({"in": [(25, [25]), (30, [0]), (40, [40])]})
    assert "top" not in result.shared.changes
    # A value change of a held key.
    result = engine.apply({"in": [(20, ["twenty"])]})
    assert result.shared.changes["top"] == ((20, ["twenty"]),)
    # A new smallest key pushes the last one out.
    result = engine.apply({"in": [(5, [5])]})
    assert result.shared.changes["top"] == ((5, [5]), (20, []))
    assert _keys(engine, "top") == [5, 10]
    # Deleting a held key pulls the next one in.
    result = engine.apply({"in": [(5, [])]})
    assert result.shared.changes["top"] == ((5, []), (20, ["twenty"]))
    # Several at once: delete both, insert between.
    result = engine.apply({"in": [(10, []), (20, []), (27, [27])]})
    assert engine.collection_entries("top") == [(25, [25]), (27, [27])]
    # Shrinking below the limit.
    engine.apply({"in": [(k, []) for k in (25, 27, 30)]})
    assert engine.collection_entries("top") == [(40, [40])]
    engine.apply({"in": [(40, [])]})
    assert engine.collection_entries("top") == []
    engine.apply({"in": [(1, [1])]})
    assert engine.collection_entries("top") == [(1, [1])]


def test_take_zero_and_more_than_size(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"none": ins["in"].take(0), "all": ins["in"].take(100)},
        **{"in": [(1, [1]), (2, [2])]},
    )
    engine.apply({"in": [(0, [0])]})
    assert engine.collection_entries("none") == []
    assert _keys(engine, "all") == [0, 1, 2]


def test_take_of_a_map_whose_keys_move(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"top": ins["in"].map(Rekey).take(2)},
        **{"in": [("a", [{"k": 3}]), ("b", [{"k": 1}]), ("c", [{"k": 2}])]},
    )
    assert engine.collection_entries("top") == [(1, ["b"]), (2, ["c"])]
    engine.apply({"in": [("a", [{"k": 0}])]})
    assert engine.collection_entries("top") == [(0, ["a"]), (1, ["b"])]
    engine.apply({"in": [("c", [{"k": 1}])]})  # two sources now feed key 1
    assert engine.collection_entries("top") == [(0, ["a"]), (1, ["b", "c"])]


@pytest.mark.parametrize("limit", [-1, 1.0, "2", True, None])
def test_take_rejects_a_bad_limit(make_engine: MakeEngine, limit: Any) -> None:
    with pytest.raises(GraphError, match="take"):
        make_engine(lambda ins, ctx: {"top": ins["in"].take(limit)}, **{"in": []})


def test_slice_is_inclusive(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"s": ins["in"].slice(2, 4)}, **{"in": [(k, [k]) for k in range(7)]}
    )
    assert _keys(engine, "s") == [2, 3, 4]
    result = engine.apply({"in": [(1.5, [0]), (2.5, [0]), (4, []), (4.0001, [0]), (2, ["two"])]})
    assert result.shared.changes["s"] == ((2, ["two"]), (2.5, [0]), (4, []))
    assert _keys(engine, "s") == [2, 2.5, 3]


def test_slice_across_types(make_engine: MakeEngine) -> None:
    keys: list[Any] = [None, False, True, -1, 0, "", "a", "b", [], [0], {}, {"a": 1}]
    engine = make_engine(
        lambda ins, ctx: {
            "bools_to_numbers": ins["in"].slice(False, 0),
            "strings": ins["in"].slice("", "\U0010ffff"),
            "arrays": ins["in"].slice([], [{}]),
            "everything": ins["in"].slice(None, {"zzz": None}),
        },
        **{"in": [(k, [0]) for k in keys]},
    )
    assert _keys(engine, "bools_to_numbers") == [False, True, -1, 0]
    assert _keys(engine, "strings") == ["", "a", "b"]
    assert _keys(engine, "arrays") == [[], [0]]
    assert _keys(engine, "everything") == keys


def test_slice_with_bounds_that_are_not_keys(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"s": ins["in"].slice("b", "d")},
        **{"in": [("a", [1]), ("bb", [1]), ("c", [1]), ("dd", [1])]},
    )
    assert _keys(engine, "s") == ["bb", "c"]
    engine.apply({"in": [("b", [1]), ("d", [1]), ("d\x00", [1])]})
    assert _keys(engine, "s") == ["b", "bb", "c", "d"]


def test_empty_slice(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda ins, ctx: {"s": ins["in"].slice(5, 1)}, **{"in": [(3, [3])]})
    engine.apply({"in": [(2, [2])]})
    assert engine.collection_entries("s") == []


def test_slices_union_of_ranges(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"s": ins["in"].slices((0, 2), (5, 6), (1, 3))},
        **{"in": [(k, [k]) for k in range(8)]},
    )
    assert _keys(engine, "s") == [0, 1, 2, 3, 5, 6]
    engine.apply({"in": [(1, []), (4, ["x"]), (5.5, ["y"]), (6, ["z"])]})
    assert engine.collection_entries("s") == [
        (0, [0]),
        (2, [2]),
        (3, [3]),
        (5, [5]),
        (5.5, ["y"]),
        (6, ["z"]),
    ]


def test_slice_of_a_map(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"s": ins["in"].map(Rekey).slice(1, 2)},
        **{"in": [("a", [{"k": 3}]), ("b", [{"k": 1}])]},
    )
    assert engine.collection_entries("s") == [(1, ["b"])]
    engine.apply({"in": [("a", [{"k": 2}]), ("b", [{"k": 0}])]})
    assert engine.collection_entries("s") == [(2, ["a"])]


def test_take_of_a_slice(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"t": ins["in"].slice(10, 100).take(2)},
        **{"in": [(k, [k]) for k in (1, 12, 50, 99, 150)]},
    )
    assert _keys(engine, "t") == [12, 50]
    engine.apply({"in": [(12, []), (11, [11]), (9, [9])]})
    assert _keys(engine, "t") == [11, 50]
