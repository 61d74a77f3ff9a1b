"""reduce: the built-in reducers, incremental steps, `remove` -> None recomputes, errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graph import Count, Engine, Mapper, Max, Min, Reducer, Sum, UserCodeError, Values

MakeEngine = Callable[..., Engine]


class ToGroup(Mapper):
    """Values {"g": group, "v": x} -> group: x."""

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for value in values:
            yield value["g"], value["v"]


def _grouped(make_engine: MakeEngine, reducer: type[Reducer], rows: list[Any]) -> Engine:
    return make_engine(
        lambda ins, ctx: {"out": ins["in"].map(ToGroup).reduce(reducer)}, **{"in": rows}
    )


def _row(key: str, *pairs: tuple[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    return key, [{"g": g, "v": v} for g, v in pairs]


@pytest.mark.parametrize(
    ("reducer", "initial", "after_update", "after_delete"),
    [
        (Count, [("x", [3]), ("y", [1])], [("x", [2]), ("y", [2])], [("y", [1])]),
        (Sum, [("x", [6]), ("y", [10])], [("x", [3]), ("y", [17])], [("y", [7])]),
        (Min, [("x", [1]), ("y", [10])], [("x", [1]), ("y", [7])], [("y", [7])]),
        (Max, [("x", [3]), ("y", [10])], [("x", [2]), ("y", [10])], [("y", [7])]),
    ],
)
def test_builtin_reducers(
    make_engine: MakeEngine,
    reducer: type[Reducer],
    initial: list[Any],
    after_update: list[Any],
    after_delete: list[Any],
) -> None:
    engine = _grouped(
        make_engine,
        reducer,
        [_row("a", ("x", 1), ("x", 2)), _row("b", ("x", 3), ("y", 10))],
    )
    assert engine.collection_entries("out") == initial
    # b's "x": 3 -> "y": 7 (b now only feeds y).
    engine.apply({"in": [_row("b", ("y", 10), ("y", 7))]})
    assert engine.collection_entries("out") == after_update
    engine.apply({"in": [("a", [])]})
    engine.apply({"in": [_row("b", ("y", 7))]})
    assert engine.collection_entries("out") == after_delete


def test_min_max_recompute_when_the_extreme_goes(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {
            "min": ins["in"].map(ToGroup).reduce(Min),
            "max": ins["in"].map(ToGroup).reduce(Max),
        },
        **{"in": [_row("a", ("g", 5)), _row("b", ("g", 1)), _row("c", ("g", 9))]},
    )
    engine.apply({"in": [("b", [])]})
    assert engine.collection_entries("min") == [("g", [5])]
    engine.apply({"in": [("c", [])]})
    assert engine.collection_entries("max") == [("g", [5])]
    engine.apply({"in": [_row("d", ("g", -3.5))]})
    assert engine.collection_entries("min") == [("g", [-3.5])]
    assert engine.collection_entries("max") == [("g", [5])]


def test_reduce_directly_over_an_input(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda ins, ctx: {"out": ins["in"].reduce(Sum)}, **{"in": [("k", [1, 2])]})
    assert engine.collection_entries("out") == [("k", [3])]
    result = engine.apply({"in": [("k", [1, 2, 3]), ("j", [0])]})
    assert result.shared.changes["out"] == (("j", [0]), ("k", [6]))
    result = engine.apply({"in": [("k", [])]})
    assert result.shared.changes["out"] == (("k", []),)


def test_unchanged_accumulator_is_not_a_change(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda ins, ctx: {"out": ins["in"].reduce(Sum)}, **{"in": [("k", [1, 2])]})
    result = engine.apply({"in": [("k", [2, 1])]})
    assert "out" not in result.shared.changes


class Log:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []


class SumRecomputing(Reducer):
    """A sum whose remove gives up (returns None) on negative values."""

    initial = 0

    def __init__(self, log: Log) -> None:
        self.log = log

    def add(self, acc: Any, value: Any) -> Any:
        self.log.calls.append(("add", value))
        return acc + value

    def remove(self, acc: Any, value: Any) -> Any:
        self.log.calls.append(("remove", value))
        return None if value < 0 else acc - value


def test_remove_none_recomputes_from_initial(make_engine: MakeEngine) -> None:
    log = Log()
    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].map(ToGroup).reduce(SumRecomputing, log)},
        **{"in": [_row("a", ("g", 1)), _row("b", ("g", -2)), _row("c", ("g", 4))]},
    )
    assert engine.collection_entries("out") == [("g", [3])]
    log.calls.clear()
    engine.apply({"in": [_row("a", ("g", 10))]})  # incremental: remove 1, add 10
    assert log.calls == [("remove", 1), ("add", 10)]
    assert engine.collection_entries("out") == [("g", [12])]
    log.calls.clear()
    engine.apply({"in": [("b", [])]})  # remove -2 -> None: fold the key's current values again
    assert log.calls == [("remove", -2), ("add", 10), ("add", 4)]
    assert engine.collection_entries("out") == [("g", [14])]


def test_several_changes_to_one_key_in_one_tick(make_engine: MakeEngine) -> None:
    log = Log()
    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].map(ToGroup).reduce(SumRecomputing, log)},
        **{"in": [_row("a", ("g", 1)), _row("b", ("g", 2))]},
    )
    engine.apply({"in": [_row("a", ("g", 5)), _row("b", ("g", 7), ("h", 1)), _row("c", ("g", 0))]})
    assert engine.collection_entries("out") == [("g", [12]), ("h", [1])]


class Concat(Reducer):
    """Non-commutative: folds values in order into a string; remove always recomputes."""

    initial = ""

    def add(self, acc: Any, value: Any) -> Any:
        return acc + str(value)


def test_recompute_sees_values_in_order(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].map(ToGroup).reduce(Concat)},
        **{"in": [_row("b", ("g", "B")), _row("a", ("g", "A")), _row("c", ("g", "C"))]},
    )
    assert engine.collection_entries("out") == [("g", ["ABC"])]
    engine.apply({"in": [_row("b", ("g", "b"))]})
    assert engine.collection_entries("out") == [("g", ["AbC"])]


class Failing(Reducer):
    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        if value == "bad-add":
            raise ValueError("cannot add")
        return acc + 1

    def remove(self, acc: Any, value: Any) -> Any:
        if value == "bad-remove":
            raise KeyError("cannot remove")
        return acc - 1


class NonJsonAccumulator(Reducer):
    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        return {"a set"} if value == "bad" else acc + 1

    def remove(self, acc: Any, value: Any) -> Any:
        return acc - 1


@pytest.mark.parametrize(
    ("reducer", "rows", "write", "message"),
    [
        (Failing, [], ("k", ["bad-add"]), r"reducer Failing\.add failed on key 'g'"),
        (
            Failing,
            [("j", ["x"]), ("k", ["y"])],
            ("k", ["bad-add"]),
            r"reducer Failing failed on key 'g': ValueError\('cannot add'\)",
        ),
        (
            Failing,
            [("j", ["x"]), ("k", ["bad-remove"])],
            ("k", []),
            r"reducer Failing failed on key 'g': KeyError\('cannot remove'\)",
        ),
        (
            NonJsonAccumulator,
            [],
            ("k", ["bad"]),
            r"reducer NonJsonAccumulator produced a non-JSON value for key 'g'",
        ),
        (
            NonJsonAccumulator,
            [("j", ["x"])],
            ("k", ["bad"]),
            r"reducer NonJsonAccumulator produced a non-JSON value for key 'g'",
        ),
    ],
)
def test_reducer_errors_name_reducer_and_key(
    make_engine: MakeEngine, reducer: type[Reducer], rows: list[Any], write: Any, message: str
) -> None:
    class AllToG(Mapper):
        def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
            for value in values:
                yield "g", value

    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].map(AllToG).reduce(reducer)}, **{"in": rows}
    )
    before = engine.collection_entries("out")
    with pytest.raises(UserCodeError, match=message):
        engine.apply({"in": [write]})
    assert engine.collection_entries("out") == before
    assert engine.version == 0
    engine.apply({"in": [("z", ["fine"])]})
    assert engine.collection_entries("out") == [("g", [len(rows) + 1])]


class LooksUp(Reducer):
    """A reducer that fails with one of the engine's own errors (a lookup without default)."""

    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        return acc + Values([]).get_unique() if value == "lookup" else acc + 1

    def remove(self, acc: Any, value: Any) -> Any:
        return acc - 1


def test_graph_errors_from_a_reducer_are_user_code_errors(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].reduce(LooksUp)}, **{"in": [("k", ["x"])]}
    )
    with pytest.raises(UserCodeError, match=r"reducer LooksUp failed on key 'k': KeyLookupError"):
        engine.apply({"in": [("k", ["x", "lookup"])]})
    assert engine.collection_entries("out") == [("k", [1])]
