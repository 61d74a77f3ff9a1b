"""map: multi-output mappers, value order, dynamic dependencies, reads, map_reduce."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from graph import (
    Context,
    Count,
    EagerCollection,
    Engine,
    KeyLookupError,
    Mapper,
    Service,
    Sum,
    UserCodeError,
    Values,
)

MakeEngine = Callable[..., Engine]
Pairs = Iterator[tuple[Any, Any]]


class Identity(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            yield key, v


class Explode(Mapper):
    """Each value {"to": [k...], "v": x} emits x under every k, in the listed order."""

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for value in values:
            for out in value["to"]:
                yield out, [key, value["v"]]


class Scale(Mapper):
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            yield key, v * self.factor


class LookupOther(Mapper):
    """Source values name a key of `other`; emits what `other` holds there. Counts its calls."""

    def __init__(self, other: EagerCollection, calls: list[Any]) -> None:
        self.other = other
        self.calls = calls

    def map_entry(self, key: Any, values: Values) -> Pairs:
        self.calls.append(key)
        for ref in values:
            for found in self.other.get_array(ref):
                yield key, found


class CountOther(Mapper):
    def __init__(self, other: EagerCollection, calls: list[Any]) -> None:
        self.other = other
        self.calls = calls

    def map_entry(self, key: Any, values: Values) -> Pairs:
        self.calls.append(key)
        yield key, self.other.size()


def test_identity_copies_entries(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Identity)},
        **{"in": [("b", [2, 1]), ("a", [{"x": 1}])]},
    )
    assert engine.collection_entries("out") == [("a", [{"x": 1}]), ("b", [2, 1])]


def test_constructor_args_are_passed(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Scale, 10)}, **{"in": [(1, [1, 2])]}
    )
    assert engine.collection_entries("out") == [(1, [10, 20])]


def test_multi_output_keeps_emission_order(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Explode)},
        **{"in": [("s", [{"to": ["y", "x", "y"], "v": 1}, {"to": ["x"], "v": 2}])]},
    )
    assert engine.collection_entries("out") == [
        ("x", [["s", 1], ["s", 2]]),
        ("y", [["s", 1], ["s", 1]]),
    ]


def test_several_sources_concatenate_in_source_key_order(make_engine: MakeEngine) -> None:
    # Written in the order c, a, b: the output lists a's values, then b's, then c's.
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Explode)},
        **{
            "in": [
                ("c", [{"to": ["k"], "v": 1}, {"to": ["k"], "v": 2}]),
                ("a", [{"to": ["k"], "v": 3}]),
            ]
        },
    )
    assert engine.collection_entries("out") == [("k", [["a", 3], ["c", 1], ["c", 2]])]
    result = engine.apply({"in": [("b", [{"to": ["k", "j"], "v": 4}])]})
    expected = [("j", [["b", 4]]), ("k", [["a", 3], ["b", 4], ["c", 1], ["c", 2]])]
    assert engine.collection_entries("out") == expected
    assert result.shared.changes["out"] == tuple(expected)
    # Updating a middle contributor rewrites only its part, in place.
    engine.apply({"in": [("b", [{"to": ["k"], "v": 5}])]})
    assert engine.collection_entries("out") == [("k", [["a", 3], ["b", 5], ["c", 1], ["c", 2]])]
    # Removing contributors one by one.
    result = engine.apply({"in": [("a", []), ("c", [])]})
    assert engine.collection_entries("out") == [("k", [["b", 5]])]
    assert result.shared.changes["out"] == (("k", [["b", 5]]),)
    result = engine.apply({"in": [("b", [])]})
    assert engine.collection_entries("out") == []
    assert result.shared.changes["out"] == (("k", []),)


def test_source_key_order_is_key_order_not_insertion(make_engine: MakeEngine) -> None:
    engine = make_engine(lambda inputs, ctx: {"out": inputs["in"].map(Explode)}, **{"in": []})
    for key in ["b", 10, None, [1], True, 2.5]:
        engine.apply({"in": [(key, [{"to": ["k"], "v": 0}])]})
    sources = [pair[0] for pair in engine.collection_entries("out")[0][1]]
    assert sources == [None, True, 2.5, 10, "b", [1]]


def test_moving_an_output_key(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Explode)},
        **{"in": [("s", [{"to": ["x"], "v": 1}])]},
    )
    result = engine.apply({"in": [("s", [{"to": ["y"], "v": 1}])]})
    assert result.shared.changes["out"] == (("x", []), ("y", [["s", 1]]))
    assert engine.collection_entries("out") == [("y", [["s", 1]])]


def test_rerun_emitting_the_same_is_no_change(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Explode)},
        **{"in": [("s", [{"to": ["x"], "v": 1}, {"to": ["x"], "v": 2}])]},
    )
    # Different input values (different order of "to" entries), same output.
    result = engine.apply({"in": [("s", [{"to": ["x"], "v": 1, "n": 0}, {"to": ["x"], "v": 2}])]})
    assert "out" not in result.shared.changes


def test_value_order_change_is_a_change(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Identity)}, **{"in": [(1, [1, 2])]}
    )
    result = engine.apply({"in": [(1, [2, 1])]})
    assert result.shared.changes["out"] == ((1, [2, 1]),)


@pytest.mark.parametrize(
    ("old", "new"), [(1, True), (0, False), (1, 1.0), ([1], [True]), ({"a": 1}, {"a": 1.0})]
)
def test_json_distinct_values_are_changes(make_engine: MakeEngine, old: Any, new: Any) -> None:
    engine = make_engine(
        lambda inputs, ctx: {"out": inputs["in"].map(Identity)}, **{"in": [("k", [old])]}
    )
    result = engine.apply({"in": [("k", [new])]})
    assert result.shared.changes["out"] == (("k", [new]),)
    assert repr(engine.collection_entries("out")) == repr([("k", [new])])


# -- dynamic dependency tracking ----------------------------------------------------------


def _lookup_engine(make_engine: MakeEngine, calls: list[Any], **inputs: list[Any]) -> Any:
    return make_engine(
        lambda ins, ctx: {"out": ins["src"].map(LookupOther, ins["other"], calls)}, **inputs
    )


def test_mapper_reruns_when_a_read_key_changes(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = _lookup_engine(
        make_engine,
        calls,
        src=[("a", ["j"]), ("b", ["k"])],
        other=[("j", ["J1"]), ("k", ["K1"])],
    )
    assert sorted(calls) == ["a", "b"]
    assert engine.collection_entries("out") == [("a", ["J1"]), ("b", ["K1"])]
    calls.clear()
    result = engine.apply({"other": [("j", ["J2"])]})
    assert calls == ["a"]  # only the reader of j reruns
    assert result.shared.changes["out"] == (("a", ["J2"]),)
    calls.clear()
    engine.apply({"other": [("zzz", ["unrelated"])]})
    assert calls == []


def test_mapper_depends_on_absent_keys_it_read(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = _lookup_engine(make_engine, calls, src=[("a", ["j"])], other=[])
    assert engine.collection_entries("out") == []
    calls.clear()
    engine.apply({"other": [("j", ["now"])]})
    assert calls == ["a"]
    assert engine.collection_entries("out") == [("a", ["now"])]
    calls.clear()
    engine.apply({"other": [("j", [])]})
    assert calls == ["a"]
    assert engine.collection_entries("out") == []


def test_mapper_stops_depending_on_keys_it_no_longer_reads(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = _lookup_engine(
        make_engine, calls, src=[("a", ["j"])], other=[("j", ["J"]), ("k", ["K"])]
    )
    engine.apply({"src": [("a", ["k"])]})  # a now reads k, not j
    assert engine.collection_entries("out") == [("a", ["K"])]
    calls.clear()
    engine.apply({"other": [("j", ["J2"])]})
    assert calls == []  # the edge to j is gone
    engine.apply({"other": [("k", ["K2"])]})
    assert calls == ["a"]
    assert engine.collection_entries("out") == [("a", ["K2"])]
    # A deleted source key drops all its edges.
    engine.apply({"src": [("a", [])]})
    calls.clear()
    engine.apply({"other": [("k", ["K3"]), ("j", ["J3"])]})
    assert calls == []
    assert engine.collection_entries("out") == []


def test_reads_of_several_keys_and_same_key_twice(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = _lookup_engine(
        make_engine, calls, src=[("a", ["j", "k", "j"])], other=[("j", [1]), ("k", [2])]
    )
    assert engine.collection_entries("out") == [("a", [1, 2, 1])]
    calls.clear()
    engine.apply({"other": [("j", [3]), ("k", [4])]})  # both read keys change in one tick
    assert calls == ["a"]  # one rerun per tick
    assert engine.collection_entries("out") == [("a", [3, 4, 3])]


def test_mapper_reading_its_own_source(make_engine: MakeEngine) -> None:
    # Every key emits the values of the key named by its value; a chain through one collection.
    calls: list[Any] = []
    engine = make_engine(
        lambda ins, ctx: {"out": ins["src"].map(LookupOther, ins["src"], calls)},
        src=[("a", ["b"]), ("b", ["c"])],
    )
    assert engine.collection_entries("out") == [("a", ["c"])]
    engine.apply({"src": [("b", ["z"])]})
    assert engine.collection_entries("out") == [("a", ["z"])]
    calls.clear()
    engine.apply({"src": [("c", ["q"])]})  # nobody reads c any more
    assert calls == ["c"]
    assert engine.collection_entries("out") == [("a", ["z"])]
    engine.apply({"src": [("z", ["q"])]})
    assert engine.collection_entries("out") == [("a", ["z"]), ("b", ["q"])]


def test_size_is_tracked_on_key_existence(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = make_engine(
        lambda ins, ctx: {"out": ins["src"].map(CountOther, ins["other"], calls)},
        src=[("s", [0])],
        other=[("a", [1])],
    )
    assert engine.collection_entries("out") == [("s", [1])]
    calls.clear()
    engine.apply({"other": [("a", [2])]})  # a value change: size unchanged, no rerun
    assert calls == []
    engine.apply({"other": [("b", [1])]})
    assert calls == ["s"]
    assert engine.collection_entries("out") == [("s", [2])]
    engine.apply({"other": [("a", []), ("b", [])]})
    assert engine.collection_entries("out") == [("s", [0])]


def test_reads_outside_user_code(make_engine: MakeEngine) -> None:
    handles: dict[str, EagerCollection] = {}

    def create_graph(ins: Any, ctx: Any) -> dict[str, EagerCollection]:
        handles.update(ins)
        handles["mapped"] = ins["in"].map(Identity)
        return {"mapped": handles["mapped"]}

    engine = make_engine(create_graph, **{"in": [("one", [1]), ("two", [1, 2])]})
    mapped = handles["mapped"]
    assert mapped.get_array("one") == [1]
    assert mapped.get_array("missing") == []
    assert mapped.get_unique("one") == 1
    assert mapped.get_unique("two", default="d") == "d"
    assert mapped.get_unique("missing", default=None) is None
    with pytest.raises(KeyLookupError, match=r"has 0 values at key 'missing', expected one"):
        mapped.get_unique("missing")
    with pytest.raises(KeyLookupError, match=r"has 2 values at key 'two', expected one"):
        mapped.get_unique("two")
    assert mapped.size() == 2
    engine.apply({"in": [("three", [3])]})
    assert mapped.size() == 3
    assert mapped.get_array("three") == [3]


def test_map_reduce(make_engine: MakeEngine) -> None:
    class ByParity(Mapper):
        def map_entry(self, key: Any, values: Values) -> Pairs:
            for v in values:
                yield v % 2, v

    engine = make_engine(
        lambda ins, ctx: {
            "sum": ins["in"].map_reduce(ByParity, Sum),
            "count": ins["in"].map_reduce(ByParity, Count),
        },
        **{"in": [("a", [1, 2, 3]), ("b", [4])]},
    )
    assert engine.collection_entries("sum") == [(0, [6]), (1, [4])]
    assert engine.collection_entries("count") == [(0, [2]), (1, [2])]
    engine.apply({"in": [("a", [5])]})
    assert engine.collection_entries("sum") == [(0, [4]), (1, [5])]
    assert engine.collection_entries("count") == [(0, [1]), (1, [1])]


# -- errors ---------------------------------------------------------------------------------


class NonJsonValue(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        if values.get_unique() == "bad":
            yield key, {1, 2}
        else:
            yield key, values.get_unique()


class NonJsonKey(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        yield (object() if values.get_unique() == "bad" else key), 1


class Raises(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        if values.get_unique() == "bad":
            raise ValueError("boom")
        yield key, 1


class NotPairs(Mapper):
    def map_entry(self, key: Any, values: Values) -> Any:
        return [1] if values.get_unique() == "bad" else [(key, 1)]


@pytest.mark.parametrize(
    ("mapper", "message"),
    [
        (NonJsonValue, r"mapper NonJsonValue produced a non-JSON key or value for key 'k'"),
        (NonJsonKey, r"mapper NonJsonKey produced a non-JSON key or value for key 'k'"),
        (Raises, r"mapper Raises failed on key 'k': ValueError\('boom'\)"),
        (NotPairs, r"mapper NotPairs failed on key 'k'"),
    ],
)
def test_user_errors_name_the_mapper_and_key(
    make_engine: MakeEngine, mapper: type[Mapper], message: str
) -> None:
    engine = make_engine(lambda ins, ctx: {"out": ins["in"].map(mapper)}, **{"in": [("j", ["ok"])]})
    before = engine.collection_entries("out")
    with pytest.raises(UserCodeError, match=message):
        engine.apply({"in": [("k", ["bad"])]})
    assert engine.collection_entries("out") == before
    assert engine.collection_entries("in") == [("j", ["ok"])]
    assert engine.version == 0
    engine.apply({"in": [("k", ["fine"])]})
    assert engine.version == 1
    assert len(engine.collection_entries("out")) == 2


def test_user_error_at_graph_construction(make_engine: MakeEngine) -> None:
    with pytest.raises(UserCodeError, match="mapper Raises failed on key 'k'"):
        make_engine(lambda ins, ctx: {"out": ins["in"].map(Raises)}, **{"in": [("k", ["bad"])]})


def test_mapper_constructor_error(make_engine: MakeEngine) -> None:
    with pytest.raises(UserCodeError, match=r"mapper Scale\(\) could not be constructed"):
        make_engine(lambda ins, ctx: {"out": ins["in"].map(Scale)}, **{"in": []})


class BadShape(Mapper):
    def map_entry(self, key: Any, values: Values) -> Any:
        kind = values.get_unique()
        if kind == "dict":
            return {"ab": 1}
        if kind == "str":
            return "ab"
        if kind == "strings":
            return ["ab"]
        return [(key, kind)]


@pytest.mark.parametrize("kind", ["dict", "str", "strings"])
def test_mapper_results_must_be_pairs(make_engine: MakeEngine, kind: str) -> None:
    engine = make_engine(lambda ins, ctx: {"out": ins["in"].map(BadShape)}, **{"in": []})
    with pytest.raises(UserCodeError, match=r"mapper BadShape failed on key 'k': TypeError"):
        engine.apply({"in": [("k", [kind])]})
    assert engine.collection_entries("out") == []


# -- null is a key like any other ------------------------------------------------------------


def test_null_output_key(make_engine: MakeEngine) -> None:
    engine = make_engine(
        lambda ins, ctx: {"out": ins["in"].map(Explode)},
        **{"in": [(None, [{"to": [None], "v": 1}]), ("s", [{"to": [None, "x"], "v": 2}])]},
    )
    assert engine.collection_entries("out") == [(None, [[None, 1], ["s", 2]]), ("x", [["s", 2]])]
    result = engine.apply({"in": [(None, [])]})
    assert result.shared.changes["out"] == ((None, [["s", 2]]),)
    result = engine.apply({"in": [("s", [])]})
    assert result.shared.changes["out"] == ((None, []), ("x", []))
    assert engine.collection_entries("out") == []


def test_null_source_key_keeps_its_dependencies(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = _lookup_engine(
        make_engine, calls, src=[(None, [None]), (False, [0])], other=[(None, ["N"]), (0, ["Z"])]
    )
    assert engine.collection_entries("out") == [(None, ["N"]), (False, ["Z"])]
    calls.clear()
    engine.apply({"other": [(None, ["N2"])]})
    assert calls == [None]
    assert engine.collection_entries("out") == [(None, ["N2"]), (False, ["Z"])]
    engine.apply({"src": [(None, [])]})  # frees the reader id of the null key ...
    engine.apply({"src": [("new", [0])]})  # ... which may be reused by another key
    calls.clear()
    engine.apply({"other": [(0, ["Z2"])]})
    assert sorted(calls, key=repr) == sorted([False, "new"], key=repr)
    assert engine.collection_entries("out") == [(False, ["Z2"]), ("new", ["Z2"])]


def test_a_mapper_may_take_the_context_as_skips_do() -> None:
    seen: list[object] = []

    class WithContext(Mapper):
        def map_entry(self, key: Any, values: Values, context: Context) -> Iterator[Any]:
            seen.append(context)
            yield key, values.get_unique() + 1

    service = Service(
        inputs={"xs": [(1, [10])]},
        resources={},
        create_graph=lambda inputs, context: {"ys": inputs["xs"].map(WithContext)},
    )
    engine = Engine.for_service(service)
    assert engine.collection_entries("ys") == [(1, [11])]
    assert seen == [engine.context]
