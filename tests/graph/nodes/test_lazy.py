"""Lazy collections: on demand, memoised, invalidated by their reads, self-recursive, cycles."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graph import (
    Context,
    CycleError,
    EagerCollection,
    Engine,
    KeyLookupError,
    LazyCollection,
    LazyCompute,
    Mapper,
    UserCodeError,
    Values,
)

MakeEngine = Callable[..., Engine]


class Doubled(LazyCompute):
    """2 * the values of `source` at the key; records every computation."""

    def __init__(self, source: EagerCollection, computed: list[Any]) -> None:
        self.source = source
        self.computed = computed

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        self.computed.append(key)
        return [2 * v for v in self.source.get_array(key)]


class Fib(LazyCompute):
    def __init__(self, computed: list[Any]) -> None:
        self.computed = computed

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        self.computed.append(key)
        if key < 2:
            return [key]
        return [self_collection.get_unique(key - 1) + self_collection.get_unique(key - 2)]


class ReadLazy(Mapper):
    """Emits, for each source key, what the lazy collection holds at the source's value."""

    def __init__(self, lazy: LazyCollection, calls: list[Any]) -> None:
        self.lazy = lazy
        self.calls = calls

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        self.calls.append(key)
        for ref in values:
            for value in self.lazy.get_array(ref):
                yield key, value


def _doubled(
    make_engine: MakeEngine, computed: list[Any], calls: list[Any], **inputs: Any
) -> tuple[Engine, LazyCollection]:
    holder: dict[str, LazyCollection] = {}

    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        lazy = holder["lazy"] = ctx.create_lazy_collection(Doubled, ins["data"], computed)
        return {"out": ins["refs"].map(ReadLazy, lazy, calls)}

    return make_engine(create_graph, **inputs), holder["lazy"]


def test_computed_on_demand_and_memoised(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    engine, lazy = _doubled(make_engine, computed, [], data=[("x", [1, 2])], refs=[])
    assert computed == []
    assert lazy.get_array("x") == [2, 4]
    assert lazy.get_array("x") == [2, 4]
    assert lazy.get_unique("missing", default="d") == "d"
    assert computed == ["x", "missing"]
    with pytest.raises(KeyLookupError, match=r"lazy collection Doubled has 2 values at key 'x'"):
        lazy.get_unique("x")
    assert engine.version == 0


def test_memo_invalidated_by_tracked_reads_only(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    engine, lazy = _doubled(make_engine, computed, [], data=[("x", [1]), ("y", [5])], refs=[])
    assert lazy.get_array("x") == [2]
    assert lazy.get_array("y") == [10]
    computed.clear()
    engine.apply({"data": [("x", [3])]})
    assert lazy.get_array("y") == [10]
    assert computed == []
    assert lazy.get_array("x") == [6]
    assert computed == ["x"]


def test_eager_mapper_over_lazy_updates(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    calls: list[Any] = []
    engine, _ = _doubled(
        make_engine,
        computed,
        calls,
        data=[("x", [1]), ("y", [5])],
        refs=[("r1", ["x"]), ("r2", ["x"]), ("r3", ["y"])],
    )
    assert engine.collection_entries("out") == [("r1", [2]), ("r2", [2]), ("r3", [10])]
    assert sorted(computed) == ["x", "y"]  # x computed once for two readers
    computed.clear()
    calls.clear()
    result = engine.apply({"data": [("x", [7])]})
    assert computed == ["x"]
    assert sorted(calls) == ["r1", "r2"]
    assert result.shared.changes["out"] == (("r1", [14]), ("r2", [14]))
    # A reader switching to another key stops depending on the old one.
    engine.apply({"refs": [("r1", ["y"]), ("r2", [])]})
    calls.clear()
    engine.apply({"data": [("x", [8])]})
    assert calls == []
    assert engine.collection_entries("out") == [("r1", [10]), ("r3", [10])]


def test_self_recursive_memoised(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    holder: dict[str, LazyCollection] = {}

    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        holder["fib"] = ctx.create_lazy_collection(Fib, computed)
        return {"out": ins["refs"].map(ReadLazy, holder["fib"], [])}

    engine = make_engine(create_graph, refs=[("a", [30])])
    assert engine.collection_entries("out") == [("a", [832040])]
    assert sorted(computed) == list(range(31))
    assert holder["fib"].get_unique(20) == 6765
    assert len(computed) == 31


# -- a spreadsheet ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*([+-]?)\s*([A-Z]+[0-9]+|[0-9]+)")


class Evaluate(LazyCompute):
    """A cell's value: its input text, either a number or "=A1+B2-3"."""

    def __init__(self, cells: EagerCollection, computed: list[Any]) -> None:
        self.cells = cells
        self.computed = computed

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        self.computed.append(key)
        text = self.cells.get_unique(key, default=None)
        if text is None:
            return [0]
        if not text.startswith("="):
            return [int(text)]
        total = 0
        for sign, term in _TOKEN.findall(text[1:]):
            value = int(term) if term.isdigit() else self_collection.get_unique(term)
            total += -value if sign == "-" else value
        return [total]


class ShowValue(Mapper):
    def __init__(self, values: LazyCollection) -> None:
        self.values = values

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        yield key, self.values.get_unique(key)


def _sheet(make_engine: MakeEngine, cells: dict[str, str], computed: list[Any]) -> Engine:
    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        values = ctx.create_lazy_collection(Evaluate, ins["cells"], computed)
        return {"values": ins["cells"].map(ShowValue, values)}

    return make_engine(create_graph, cells=[(k, [v]) for k, v in cells.items()])


def test_spreadsheet(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    engine = _sheet(
        make_engine,
        {"A1": "=B1+C1", "B1": "2", "C1": "=B1+B1-1", "D1": "=A1+Z9", "E1": "7"},
        computed,
    )
    assert dict(engine.collection_entries("values")) == {
        "A1": [5],
        "B1": [2],
        "C1": [3],
        "D1": [5],
        "E1": [7],
    }
    computed.clear()
    result = engine.apply({"cells": [("B1", ["10"])]})
    assert dict(result.shared.changes["values"]) == {"A1": [29], "B1": [10], "C1": [19], "D1": [29]}
    assert sorted(computed) == ["A1", "B1", "C1", "D1"]  # E1 untouched, each once
    # A referenced cell that did not exist appears.
    engine.apply({"cells": [("Z9", ["100"])]})
    assert dict(engine.collection_entries("values"))["D1"] == [129]
    # Rewriting a formula changes its dependencies.
    engine.apply({"cells": [("A1", ["=E1"])]})
    assert dict(engine.collection_entries("values"))["A1"] == [7]
    assert dict(engine.collection_entries("values"))["D1"] == [107]
    computed.clear()
    engine.apply({"cells": [("C1", ["0"])]})  # A1 no longer reads C1
    assert sorted(computed) == ["C1"]
    engine.apply({"cells": [("E1", ["1"])]})
    assert dict(engine.collection_entries("values")) == {
        "A1": [1],
        "B1": [10],
        "C1": [0],
        "D1": [101],
        "E1": [1],
        "Z9": [100],
    }


def test_spreadsheet_cycle_is_a_clear_error_and_the_engine_keeps_working(
    make_engine: MakeEngine,
) -> None:
    engine = _sheet(make_engine, {"A1": "=B1", "B1": "1", "C1": "=A1+1"}, [])
    before = engine.collection_entries("values")
    message = (
        r"lazy collection Evaluate depends on itself at key 'B1' "
        r"\(cycle: 'B1' -> 'C1' -> 'A1' -> 'B1'\)"
    )
    with pytest.raises(CycleError, match=message) as info:
        engine.apply({"cells": [("B1", ["=C1"])]})
    assert isinstance(info.value, UserCodeError)
    assert engine.version == 0
    assert engine.collection_entries("values") == before
    assert engine.collection_entries("cells") == [("A1", ["=B1"]), ("B1", ["1"]), ("C1", ["=A1+1"])]
    # Still working, and still incremental.
    engine.apply({"cells": [("B1", ["5"])]})
    assert dict(engine.collection_entries("values")) == {"A1": [5], "B1": [5], "C1": [6]}
    assert engine.version == 1
    # A self-reference too.
    with pytest.raises(CycleError, match=r"at key 'D1' \(cycle: 'D1' -> 'D1'\)"):
        engine.apply({"cells": [("D1", ["=D1"])]})
    engine.apply({"cells": [("A1", ["=2"])]})
    assert dict(engine.collection_entries("values")) == {"A1": [2], "B1": [5], "C1": [3]}


def test_cycle_at_construction(make_engine: MakeEngine) -> None:
    with pytest.raises(CycleError):
        _sheet(make_engine, {"A1": "=B1", "B1": "=A1"}, [])


class Failing(LazyCompute):
    def __init__(self, data: EagerCollection) -> None:
        self.data = data

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        value = self.data.get_unique(key)
        if value == "bad":
            raise RuntimeError("lazy boom")
        if value == "set":
            return [{1}]
        return [value]


def test_lazy_errors_name_the_compute_and_key(make_engine: MakeEngine) -> None:
    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        lazy = ctx.create_lazy_collection(Failing, ins["data"])
        return {"out": ins["refs"].map(ReadLazy, lazy, [])}

    engine = make_engine(create_graph, data=[("k", ["ok"])], refs=[("r", ["k"])])
    with pytest.raises(
        UserCodeError, match=r"lazy compute Failing failed on key 'k': RuntimeError\('lazy boom'\)"
    ):
        engine.apply({"data": [("k", ["bad"])]})
    assert engine.collection_entries("out") == [("r", ["ok"])]
    with pytest.raises(
        UserCodeError, match=r"lazy compute Failing produced a non-JSON value for key 'k'"
    ):
        engine.apply({"data": [("k", ["set"])]})
    with pytest.raises(
        UserCodeError, match=r"lazy compute Failing failed on key 'k': KeyLookupError"
    ):
        engine.apply({"data": [("k", [])]})
    assert engine.version == 0
    engine.apply({"data": [("k", ["fine"])]})
    assert engine.collection_entries("out") == [("r", ["fine"])]


def test_lazy_constructor_error(make_engine: MakeEngine) -> None:
    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        ctx.create_lazy_collection(Failing)
        return {}

    with pytest.raises(UserCodeError, match="lazy compute Failing could not be constructed"):
        make_engine(create_graph, data=[])


class ReturnsText(LazyCompute):
    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        return "abc"


def test_lazy_result_must_be_a_list(make_engine: MakeEngine) -> None:
    holder: dict[str, LazyCollection] = {}

    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        holder["lazy"] = ctx.create_lazy_collection(ReturnsText)
        return {}

    make_engine(create_graph)
    with pytest.raises(UserCodeError, match=r"lazy compute ReturnsText failed on key 1: TypeError"):
        holder["lazy"].get_array(1)


def test_lazy_with_a_null_key(make_engine: MakeEngine) -> None:
    computed: list[Any] = []
    engine, lazy = _doubled(make_engine, computed, [], data=[(None, [1])], refs=[("r", [None])])
    assert engine.collection_entries("out") == [("r", [2])]
    engine.apply({"data": [(None, [4])]})
    assert engine.collection_entries("out") == [("r", [8])]
    assert lazy.get_array(None) == [8]


def test_a_failed_computation_leaves_no_edges(make_engine: MakeEngine) -> None:
    holder: dict[str, LazyCollection] = {}

    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        holder["lazy"] = ctx.create_lazy_collection(Failing, ins["data"])
        return {"data": ins["data"]}

    engine = make_engine(create_graph, data=[("k", ["bad"]), ("j", ["ok"])])
    lazy = holder["lazy"]
    data = engine._shared["data"]  # white-box: the edges live on the read collection
    with pytest.raises(UserCodeError):
        lazy.get_array("k")
    assert data.readers == {}
    assert lazy.memo == {}
    assert lazy.get_array("j") == ["ok"]
    assert list(data.readers) == ["j"]
    engine.apply({"data": [("j", ["ok2"])]})  # invalidates the memo and its edge
    assert data.readers == {}
    assert lazy.get_array("j") == ["ok2"]
