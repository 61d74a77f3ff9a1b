"""Engine: ticks and versions, validation, all-or-nothing rollback, replace_all, mirrors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from broker.store.codec import DeltaEntry
from graph import (
    Context,
    Count,
    EagerCollection,
    Engine,
    GraphError,
    InvalidWriteError,
    LazyCollection,
    LazyCompute,
    Mapper,
    NotJsonError,
    Reducer,
    Resource,
    Service,
    UnknownCollectionError,
    UserCodeError,
    Values,
)

MakeEngine = Callable[..., Engine]
Pairs = Iterator[tuple[Any, Any]]


class Identity(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            yield key, v


class ByGroup(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            yield v["g"], key


def _simple(make_engine: MakeEngine, **inputs: Any) -> Engine:
    return make_engine(
        lambda ins, ctx: {"copy": ins["a"].map(Identity), "empty": ins["b"].map(Identity)},
        **{"a": [], "b": [], **inputs},
    )


# -- versions and results ---------------------------------------------------------------------


def test_versions(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine)
    assert engine.version == 0
    assert engine.apply({"a": [(1, [1])]}).version == 1
    assert engine.apply({}).version == 2  # an empty batch is still a tick
    assert engine.apply({"a": []}, version=10).version == 10
    assert engine.version == 10
    with pytest.raises(InvalidWriteError, match="version 10 is not after 10"):
        engine.apply({"a": [(2, [2])]}, version=10)
    with pytest.raises(InvalidWriteError):
        engine.apply({"a": [(2, [2])]}, version=3)
    assert engine.version == 10
    assert engine.collection_entries("a") == [(1, [1])]


def test_names(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine)
    assert engine.input_names == ("a", "b")
    assert engine.shared_names == ("copy", "empty")
    assert engine.service.input_names == ("a", "b")
    assert engine.service.resource_names == ()


def test_changeset_lists_exactly_the_changed_keys(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine, a=[(k, [k]) for k in range(5)])
    result = engine.apply(
        {"a": [(3, ["x"]), (1, [1]), ("s", [None]), (0, []), (9, []), (2, [2, 2]), (4, [4])]}
    )
    assert result.version == 1
    assert result.shared.version == 1
    assert result.shared.changes == {"copy": ((0, []), (2, [2, 2]), (3, ["x"]), ("s", [None]))}
    assert not result.shared.is_empty()
    assert result.instances == {}
    result = engine.apply({"a": [(3, ["x"])]})
    assert result.shared.changes == {}
    assert result.shared.is_empty()


def test_a_key_written_twice_in_one_batch(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine, a=[(1, ["old"])])
    result = engine.apply({"a": [(1, ["mid"]), (1, ["old"])]})
    assert result.shared.changes == {}  # changed then changed back: no change this tick
    result = engine.apply({"a": [(1, ["mid"]), (1, [])]})
    assert result.shared.changes == {"copy": ((1, []),)}


def test_collection_entries(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine, a=[("k", [1, 2])])
    assert engine.collection_entries("a") == [("k", [1, 2])]
    assert engine.collection_entries("copy") == [("k", [1, 2])]
    assert engine.collection_entries("empty") == []  # an empty shared collection exists
    assert engine.collection_size("copy") == 1
    assert list(engine.collection_items("copy")) == [("k", [1, 2])]
    with pytest.raises(UnknownCollectionError, match="unknown collection 'nope'"):
        engine.collection_entries("nope")
    # Returned lists are copies.
    engine.collection_entries("a")[0][1].append(3)
    assert engine.collection_entries("a") == [("k", [1, 2])]


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("writes", "error", "message"),
    [
        ({"nope": []}, UnknownCollectionError, "unknown input collection 'nope'"),
        ({"copy": []}, UnknownCollectionError, "unknown input collection 'copy'"),
        ([("a", [])], InvalidWriteError, "maps collection names"),
        ({"a": {"k": [1]}}, InvalidWriteError, "collection 'a': expected a list"),
        ({"a": "k"}, InvalidWriteError, "collection 'a': expected a list"),
        ({"a": [("k",)]}, InvalidWriteError, r"entry 0: expected \[key, \[values...\]\]"),
        ({"a": [("k", [1], 2)]}, InvalidWriteError, "entry 0"),
        ({"a": [("k", [1]), "k"]}, InvalidWriteError, "entry 1"),
        ({"a": [("k", 1)]}, InvalidWriteError, "values must be a list"),
        ({"a": [("k", "abc")]}, InvalidWriteError, "values must be a list"),
        ({"a": [({1, 2}, [1])]}, NotJsonError, r"collection 'a', entry 0: .* is not JSON"),
        ({"a": [({1: 2}, [1])]}, NotJsonError, "entry 0: object key 1 is not a string"),
        ({"a": [({1: 2, "x": 3}, [1])]}, NotJsonError, "object key 1 is not a string"),
        ({"a": [("k", [float("nan")])]}, NotJsonError, "nan is not a JSON number"),
        ({"a": [("k", [2**64])]}, NotJsonError, "64-bit"),
        ({"a": [("k", ["\ud800"])]}, NotJsonError, "surrogate"),
    ],
)
def test_validation_errors(
    make_engine: MakeEngine, writes: Any, error: type[Exception], message: str
) -> None:
    engine = _simple(make_engine, a=[("k", [0])])
    with pytest.raises(error, match=message):
        engine.validate(writes)
    # apply validates the whole batch first: nothing is applied, not even the valid part.
    batch = {"b": [("ok", [1])], **writes} if isinstance(writes, dict) else writes
    with pytest.raises(error, match=message):
        engine.apply(batch)
    assert engine.version == 0
    assert engine.collection_entries("b") == []
    assert engine.collection_entries("a") == [("k", [0])]


def test_validation_errors_are_graph_errors() -> None:
    assert issubclass(UnknownCollectionError, GraphError)
    assert issubclass(UnknownCollectionError, KeyError)
    assert issubclass(InvalidWriteError, GraphError)
    assert issubclass(NotJsonError, GraphError)


def test_validate_returns_the_normalised_batch(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine)
    batch = engine.validate({"a": [[1.0, (1, 2)], ("k", [])], "b": ((True, [None]),)})
    assert batch == {"a": [(1, [1, 2]), ("k", [])], "b": [(True, [None])]}
    assert type(batch["a"][0][0]) is int
    assert engine.version == 0
    assert engine.collection_entries("a") == []


# -- rollback -------------------------------------------------------------------------------------


class LookupOther(Mapper):
    """Emits other[ref] for every ref value; raises on the value "boom"."""

    def __init__(self, other: EagerCollection, calls: list[Any]) -> None:
        self.other = other
        self.calls = calls

    def map_entry(self, key: Any, values: Values) -> Pairs:
        self.calls.append(key)
        for ref in values:
            for found in self.other.get_array(ref):
                if found == "boom":
                    raise RuntimeError("mapper boom")
                yield key, found


class TouchyCount(Reducer):
    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        if value == "reduce-boom":
            raise ValueError("reducer boom")
        return acc + 1

    def remove(self, acc: Any, value: Any) -> Any:
        return acc - 1


class LazyEcho(LazyCompute):
    def __init__(self, data: EagerCollection) -> None:
        self.data = data

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        values = self.data.get_array(key)
        if "lazy-boom" in values:
            raise KeyError("lazy boom")
        return values


class ReadLazy(Mapper):
    def __init__(self, lazy: LazyCollection) -> None:
        self.lazy = lazy

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for ref in values:
            for v in self.lazy.get_array(ref):
                yield key, v


class Echo(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        lazy = context.create_lazy_collection(LazyEcho, collections["other"])
        return collections["src"].map(ReadLazy, lazy).take(self.params["n"])


def _rollback_graph(calls: list[Any]) -> Callable[[Any, Context], dict[str, EagerCollection]]:
    def create_graph(ins: Any, ctx: Context) -> dict[str, EagerCollection]:
        looked = ins["src"].map(LookupOther, ins["other"], calls)
        lazy = ctx.create_lazy_collection(LazyEcho, ins["other"])
        return {
            "src": ins["src"],
            "other": ins["other"],
            "looked": looked,
            "counted": looked.reduce(TouchyCount),
            "via_lazy": ins["src"].map(ReadLazy, lazy),
            "top": looked.take(2),
        }

    return create_graph


def _state(engine: Engine, instances: list[Any]) -> Any:
    return (
        engine.version,
        {name: engine.collection_entries(name) for name in engine.shared_names},
        [inst.entries() for inst in instances],
    )


def _edges(engine: Engine, instances: list[Any]) -> Any:
    """White-box: every dependency edge into the shared collections and the instances' lazy
    collections, and those lazies' memos."""
    stores = [*engine._shared.values(), *(lazy for inst in instances for lazy in inst.lazies)]
    return [
        (
            repr(store),
            sorted(
                (repr(key), repr(owner), list(bits))
                for key, owners in store.readers.items()
                for owner, bits in owners.items()
            ),
            sorted(map(repr, getattr(store, "memo", {}).items())),
        )
        for store in stores
    ]


ROLLBACK_CASES = [
    (
        {"other": [("j", ["boom"])]},
        r"mapper LookupOther failed on key 'a': RuntimeError\('mapper boom'\)",
    ),
    ({"other": [("k", ["reduce-boom"])]}, r"reducer TouchyCount(\.add)? failed on key 'b'"),
    ({"other": [("j", ["lazy-boom"])]}, r"lazy compute LazyEcho failed on key 'j': KeyError"),
    # The failure comes after other changes of the same tick have propagated.
    (
        {"src": [("c", ["k"]), ("a", ["k"]), ("z", ["j"])], "other": [("k", ["new", "boom"])]},
        "mapper LookupOther failed",
    ),
]


@pytest.mark.parametrize(("writes", "message"), ROLLBACK_CASES)
def test_rollback_restores_everything(make_engine: MakeEngine, writes: Any, message: str) -> None:
    calls: list[Any] = []
    engine = make_engine(
        _rollback_graph(calls),
        resources={"echo": Echo},
        src=[("a", ["j"]), ("b", ["k"])],
        other=[("j", ["J"]), ("k", ["K"])],
    )
    engine.apply({"src": [("c", ["j", "k"])]})
    instances = [engine.instantiate("echo", {"n": n}) for n in (1, 5)]
    before = _state(engine, instances)
    edges = _edges(engine, instances)
    with pytest.raises(UserCodeError, match=message):
        engine.apply(writes)
    assert _state(engine, instances) == before
    assert _edges(engine, instances) == edges
    # Dependency edges are as before too: a fresh engine fed the same later writes agrees.
    follow_ups = [
        {"other": [("j", ["J2"])]},
        {"other": [("k", ["K2"]), ("new", ["N"])]},
        {"src": [("a", ["new"]), ("b", [])]},
        {"other": [("j", ["J3"]), ("new", ["N2"])]},
    ]
    fresh_calls: list[Any] = []
    fresh = make_engine(
        _rollback_graph(fresh_calls),
        resources={"echo": Echo},
        src=[("a", ["j"]), ("b", ["k"])],
        other=[("j", ["J"]), ("k", ["K"])],
    )
    fresh.apply({"src": [("c", ["j", "k"])]})
    fresh_instances = [fresh.instantiate("echo", {"n": n}) for n in (1, 5)]
    for batch in follow_ups:
        calls.clear()
        fresh_calls.clear()
        result = engine.apply(batch)
        expected = fresh.apply(batch)
        assert sorted(calls, key=repr) == sorted(fresh_calls, key=repr)  # same reruns
        assert result.shared == expected.shared
        assert [result.instances.get(i.id) for i in instances] == [
            expected.instances.get(i.id) for i in fresh_instances
        ]
        assert _state(engine, instances) == _state(fresh, fresh_instances)


def test_rollback_of_a_rerun_restores_old_dependencies(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = make_engine(
        _rollback_graph(calls),
        src=[("a", ["j"])],
        other=[("j", ["J"]), ("k", ["K"]), ("x", ["X"])],
    )
    # In the failed tick, a switched to reading k and x; x raises.
    with pytest.raises(UserCodeError):
        engine.apply({"src": [("a", ["k", "x"])], "other": [("x", ["boom"])]})
    calls.clear()
    engine.apply({"other": [("k", ["K2"])]})
    assert calls == []  # the failed run's edge to k is gone
    engine.apply({"other": [("x", ["X2"])]})
    assert calls == []
    engine.apply({"other": [("j", ["J2"])]})
    assert calls == ["a"]  # the edge to j is back
    assert engine.collection_entries("looked") == [("a", ["J2"])]


def test_non_graph_exceptions_roll_back_too(make_engine: MakeEngine) -> None:
    class Interrupting(Mapper):
        def map_entry(self, key: Any, values: Values) -> Pairs:
            if values.get_unique() == "stop":
                raise KeyboardInterrupt
            yield key, values.get_unique()

    engine = make_engine(lambda ins, ctx: {"m": ins["a"].map(Interrupting)}, a=[("k", [1])])
    with pytest.raises(KeyboardInterrupt):
        engine.apply({"a": [("j", [2]), ("k", ["stop"])]})
    assert engine.version == 0
    assert engine.collection_entries("m") == [("k", [1])]
    assert engine.collection_entries("a") == [("k", [1])]
    engine.apply({"a": [("j", [2])]})
    assert engine.collection_entries("m") == [("j", [2]), ("k", [1])]


# -- replace_all and mirrors ----------------------------------------------------------------------


class Top(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["counts"].take(self.params)


def _counting_service(**inputs: Any) -> Service:
    return Service(
        inputs={"votes": [], **inputs},
        resources={"top": Top},
        create_graph=lambda ins, ctx: {"counts": ins["votes"].map(ByGroup).reduce(Count)},
    )


def test_replace_all(make_engine: MakeEngine) -> None:
    engine = Engine.for_service(
        _counting_service(votes=[(1, [{"g": "x"}]), (2, [{"g": "y"}]), (3, [{"g": "y"}])])
    )
    top = engine.instantiate("top", 1)
    result = engine.replace_all(
        {"votes": [(2, [{"g": "y"}]), (4, [{"g": "x"}]), (5, [{"g": "x"}])]}, 7
    )
    assert result.version == engine.version == 7
    assert engine.collection_entries("votes") == [
        (2, [{"g": "y"}]),
        (4, [{"g": "x"}]),
        (5, [{"g": "x"}]),
    ]
    assert result.shared.changes == {"counts": (("x", [2]), ("y", [1]))}
    assert result.instances == {top.id: [("x", [2])]}
    # A state naming no keys of a collection empties it; unchanged state changes nothing.
    result = engine.replace_all(
        {"votes": [(2, [{"g": "y"}]), (4, [{"g": "x"}]), (5, [{"g": "x"}])]}, 8
    )
    assert result.shared.is_empty()
    result = engine.replace_all({}, 9)
    assert engine.collection_entries("votes") == []
    assert result.shared.changes == {"counts": (("x", []), ("y", []))}
    with pytest.raises(InvalidWriteError):
        engine.replace_all({}, 9)
    with pytest.raises(UnknownCollectionError):
        engine.replace_all({"counts": []}, 10)


def test_mirror_follows_a_leader() -> None:
    service = _counting_service()
    leader = Engine.for_service(service)
    follower = Engine.mirror(service, leader.shared_names)
    assert follower.input_names == follower.shared_names == ("counts",)
    assert follower.version == 0
    leader_top = leader.instantiate("top", 2)
    follower_top = follower.instantiate("top", 2)
    batches: list[dict[str, Any]] = [
        {"votes": [(1, [{"g": "b"}]), (2, [{"g": "a"}])]},
        {"votes": [(3, [{"g": "c"}]), (4, [{"g": "c"}])]},
        {"votes": [(2, [])]},
        {"votes": [(1, [{"g": "c"}])]},
    ]
    for batch in batches:
        result = leader.apply(batch)
        published = DeltaEntry.decode(
            DeltaEntry(result.version, "e", 1, 0, result.shared.changes).encode()
        )
        mirrored = follower.apply(
            {name: list(entries) for name, entries in published.changes.items()},
            version=published.version,
        )
        assert follower.version == leader.version
        assert follower.collection_entries("counts") == leader.collection_entries("counts")
        assert mirrored.shared.changes == result.shared.changes
        assert follower_top.entries() == leader_top.entries()
        assert mirrored.instances.get(follower_top.id) == result.instances.get(leader_top.id)


def test_mirror_resync_with_replace_all() -> None:
    service = _counting_service()
    leader = Engine.for_service(service)
    leader.apply({"votes": [(i, [{"g": i % 3}]) for i in range(10)]})
    follower = Engine.mirror(service, ["counts"])
    follower.apply({"counts": [(0, [100]), (7, [1])]})
    top = follower.instantiate("top", 10)
    snapshot = {"counts": leader.collection_entries("counts")}
    result = follower.replace_all(snapshot, leader.version + 5)
    assert follower.collection_entries("counts") == leader.collection_entries("counts")
    assert result.instances[top.id] == [(0, [4]), (1, [3]), (2, [3]), (7, [])]


# -- service definition ------------------------------------------------------------------------


@pytest.mark.parametrize("returned", [{"x": 1}, [1], None])
def test_create_graph_must_return_collections(returned: Any) -> None:
    def create_graph(inputs: Any, context: Any) -> Any:
        return returned

    service = Service(inputs={"a": []}, resources={}, create_graph=create_graph)
    with pytest.raises(GraphError, match="create_graph must return a dict of EagerCollection"):
        Engine.for_service(service)


def test_service_names_must_be_strings() -> None:
    with pytest.raises(GraphError, match="input names must be non-empty strings"):
        Service(inputs={"": []}, resources={})
    with pytest.raises(GraphError, match="resource names"):
        Service(inputs={}, resources={1: Resource})  # type: ignore[dict-item]


def test_initial_entries_are_validated() -> None:
    with pytest.raises(NotJsonError, match="collection 'a', entry 1"):
        Engine.for_service(Service(inputs={"a": [("k", [1]), ("j", [{1}])]}, resources={}))
    with pytest.raises(InvalidWriteError):
        Engine.for_service(Service(inputs={"a": [("k", 1)]}, resources={}))


def test_no_create_graph() -> None:
    engine = Engine.for_service(Service(inputs={"a": [("k", [1])]}, resources={}))
    assert engine.shared_names == ()
    assert engine.apply({"a": [("k", [2])]}).shared.is_empty()
    assert engine.collection_entries("a") == [("k", [2])]


# -- begin / commit / abort --------------------------------------------------------------------


def test_begin_commit(make_engine: MakeEngine) -> None:
    engine = _simple(make_engine, a=[(1, [1])])
    pending = engine.begin({"a": [(2, [2])]})
    assert pending.result.version == 1
    assert pending.result.shared.changes == {"copy": ((2, [2]),)}
    assert engine.version == 0  # not yet
    with pytest.raises(GraphError, match="a tick is already in progress"):
        engine.apply({"a": [(3, [3])]})
    pending.commit()
    assert engine.version == 1
    assert engine.collection_entries("copy") == [(1, [1]), (2, [2])]
    with pytest.raises(GraphError, match="already committed or aborted"):
        pending.abort()
    assert engine.apply({"a": [(3, [3])]}).version == 2


def test_begin_abort_restores_everything(make_engine: MakeEngine) -> None:
    calls: list[Any] = []
    engine = make_engine(
        _rollback_graph(calls),
        resources={"echo": Echo},
        src=[("a", ["j"]), ("b", ["k"])],
        other=[("j", ["J"]), ("k", ["K"])],
    )
    instances = [engine.instantiate("echo", {"n": n}) for n in (1, 5)]
    before = _state(engine, instances)
    pending = engine.begin(
        {"src": [("a", ["k"]), ("c", ["j"])], "other": [("k", ["K2"])]}, version=4
    )
    assert pending.result.version == 4
    assert pending.result.instances
    with pytest.raises(GraphError, match="cannot instantiate a resource during a tick"):
        engine.instantiate("echo", {"n": 2})
    pending.abort()
    assert _state(engine, instances) == before
    with pytest.raises(GraphError):
        pending.commit()
    # Edges are as before: a's reader depends on j again, not on k.
    calls.clear()
    engine.apply({"other": [("k", ["K3"])]})
    assert calls == ["b"]
    engine.apply({"other": [("j", ["J3"])]})
    assert calls == ["b", "a"]


def test_release_during_an_open_tick_is_deferred(make_engine: MakeEngine) -> None:
    engine = make_engine(
        _rollback_graph([]),
        resources={"echo": Echo},
        src=[("a", ["j"])],
        other=[("j", ["J"])],
    )
    inst = engine.instantiate("echo", {"n": 3})
    keep = engine.instantiate("echo", {"n": 4})
    pending = engine.begin({"other": [("j", ["J2"])]})
    assert set(pending.result.instances) == {inst.id, keep.id}
    engine.release(inst)
    assert engine.instance_count == 1
    pending.abort()
    result = engine.apply({"other": [("j", ["J3"])]})
    assert set(result.instances) == {keep.id}
    assert keep.entries() == [("a", ["J3"])]


def test_double_release_is_an_error() -> None:
    engine = Engine.for_service(_counting_service())
    inst = engine.instantiate("top", 1)
    engine.release(inst)
    with pytest.raises(GraphError, match=r"instance #1 \(top\) was already released"):
        engine.release(inst)


@pytest.mark.parametrize("version", ["5", 5.0, True, None.__class__])
def test_version_must_be_an_int(make_engine: MakeEngine, version: Any) -> None:
    engine = _simple(make_engine)
    with pytest.raises(InvalidWriteError, match="a version is an int"):
        engine.apply({"a": []}, version=version)
    assert engine.version == 0
