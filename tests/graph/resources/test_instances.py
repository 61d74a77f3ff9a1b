"""Resource instances: shared per (resource, params), refcounted, freed, their errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from graph import (
    Context,
    EagerCollection,
    Engine,
    GraphError,
    LazyCollection,
    LazyCompute,
    Mapper,
    ParamsRejectedError,
    Resource,
    Service,
    UnknownResourceError,
    Values,
)

Pairs = Iterator[tuple[Any, Any]]
CALLS: list[Any] = []


class Tag(Mapper):
    """Appends the instance's tag to every value; logs its calls in CALLS."""

    def __init__(self, tag: Any, lazy: LazyCollection | None = None) -> None:
        self.tag = tag
        self.lazy = lazy

    def map_entry(self, key: Any, values: Values) -> Pairs:
        CALLS.append((self.tag, key))
        extra = self.lazy.get_array(key) if self.lazy is not None else []
        for v in values:
            yield key, [v, self.tag, *extra]


class Echo(LazyCompute):
    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        CALLS.append(("lazy", key))
        return [key]


class Tagged(Resource):
    def __init__(self, params: Any) -> None:
        if not isinstance(params, dict):
            raise ValueError('params must be an object like {"tag": ...}')
        if "reject" in params:
            raise ValueError(params["reject"])
        super().__init__(params)

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        lazy = context.create_lazy_collection(Echo) if self.params.get("lazy") else None
        tagged = collections["data"].map(Tag, self.params.get("tag"), lazy)
        if self.params.get("fail_late"):
            raise RuntimeError("instantiate failed after building nodes")
        return tagged.take(self.params.get("limit", 10))


class Whole(Resource):
    """Returns a shared collection itself."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["data"]


class NotACollection(Resource):
    def instantiate(self, collections: Mapping[str, EagerCollection], context: Context) -> Any:
        return [1, 2]


class Silent(Resource):
    def __init__(self, params: Any) -> None:
        raise ValueError

    def instantiate(self, collections: Any, context: Any) -> Any:
        raise AssertionError("never built: the constructor refuses every params")


@pytest.fixture
def engine() -> Engine:
    CALLS.clear()
    service = Service(
        inputs={"data": [("a", [1]), ("b", [2])]},
        resources={"tagged": Tagged, "whole": Whole, "bad": NotACollection, "silent": Silent},
        create_graph=lambda ins, ctx: {"data": ins["data"]},
    )
    return Engine.for_service(service)


def test_instance_content(engine: Engine) -> None:
    inst = engine.instantiate("tagged", {"tag": "t", "limit": 1})
    assert inst.resource == "tagged"
    assert inst.params == {"tag": "t", "limit": 1}
    assert inst.entries() == [("a", [[1, "t"]])]
    assert inst.lookup("a") == [[1, "t"]]
    assert inst.lookup("b") == []  # past the limit
    assert inst.lookup(["absent"]) == []
    result = engine.apply({"data": [("0", [0])]})
    assert result.instances == {inst.id: [("0", [[0, "t"]]), ("a", [])]}
    assert inst.entries() == [("0", [[0, "t"]])]


def test_identical_params_share_one_instance(engine: Engine) -> None:
    first = engine.instantiate("tagged", {"tag": "t", "limit": 5})
    second = engine.instantiate("tagged", {"limit": 5, "tag": "t"})  # same params, other order
    assert second is first
    assert first.refs == 2
    assert engine.instance_count == 1
    CALLS.clear()
    result = engine.apply({"data": [("c", [3])]})
    assert CALLS == [("t", "c")]  # one instance: the mapper ran once
    assert list(result.instances) == [first.id]


@pytest.mark.parametrize(
    "other",
    [{"tag": 1.0}, {"tag": True}, {"tag": "1"}, {"tag": [1]}, {"tag": 1, "limit": 10}],
)
def test_different_params_are_different_instances(engine: Engine, other: Any) -> None:
    first = engine.instantiate("tagged", {"tag": 1})
    second = engine.instantiate("tagged", other)
    assert second is not first
    assert second.id != first.id
    assert engine.instance_count == 2


def test_refcount_and_freeing(engine: Engine) -> None:
    inst = engine.instantiate("tagged", {"tag": "t", "lazy": True})
    assert engine.instantiate("tagged", {"tag": "t", "lazy": True}) is inst
    keeper = engine.instantiate("tagged", {"tag": "keep"})
    engine.release(inst)
    assert engine.instance_count == 2
    result = engine.apply({"data": [("c", [3])]})
    assert set(result.instances) == {inst.id, keeper.id}
    engine.release(inst)
    assert engine.instance_count == 1
    CALLS.clear()
    result = engine.apply({"data": [("d", [4]), ("a", [10])]})
    # The freed instance's mapper and lazy no longer run; it is absent from the results.
    assert sorted(CALLS) == [("keep", "a"), ("keep", "d")]
    assert set(result.instances) == {keeper.id}
    # The same params again: a new instance with a new id, fully up to date.
    again = engine.instantiate("tagged", {"tag": "t", "lazy": True})
    assert again is not inst
    assert again.id not in (inst.id, keeper.id)
    assert again.entries() == [
        (k, [[v, "t", k]]) for k, v in [("a", 10), ("b", 2), ("c", 3), ("d", 4)]
    ]


def test_instance_ids_are_never_reused(engine: Engine) -> None:
    seen = set()
    for i in range(5):
        inst = engine.instantiate("tagged", {"tag": i % 2})
        assert inst.id not in seen
        seen.add(inst.id)
        engine.release(inst)
    assert engine.instance_count == 0


def test_instance_over_a_shared_collection(engine: Engine) -> None:
    whole = engine.instantiate("whole", None)
    also = engine.instantiate("whole", {})
    assert whole is not also
    result = engine.apply({"data": [("a", [])]})
    assert result.instances == {whole.id: [("a", [])], also.id: [("a", [])]}
    assert result.shared.changes == {"data": (("a", []),)}
    engine.release(whole)
    result = engine.apply({"data": [("b", [5])]})
    assert result.instances == {also.id: [("b", [5])]}
    engine.release(also)
    # Releasing must not have detached the shared collection itself.
    result = engine.apply({"data": [("b", [6])]})
    assert result.shared.changes == {"data": (("b", [6]),)}
    assert result.instances == {}


def test_unknown_resource(engine: Engine) -> None:
    with pytest.raises(UnknownResourceError, match="unknown resource 'nope'"):
        engine.instantiate("nope", {})
    assert issubclass(UnknownResourceError, GraphError)


@pytest.mark.parametrize(
    ("resource", "params", "message"),
    [
        ("tagged", {"reject": "limit must be positive"}, "^limit must be positive$"),
        ("tagged", [1], r"^params must be an object like \{\"tag\": ...\}$"),
        ("tagged", {"fail_late": True}, "^instantiate failed after building nodes$"),
        ("bad", {}, "resource 'bad' did not return an EagerCollection"),
        ("silent", {}, "^ValueError$"),
        ("tagged", {"x": float("nan")}, "params are not JSON"),
        ("tagged", {"x": {1, 2}}, "params are not JSON"),
        ("tagged", {1: 2}, "params are not JSON"),
    ],
)
def test_params_rejected_carries_the_message(
    engine: Engine, resource: str, params: Any, message: str
) -> None:
    with pytest.raises(ParamsRejectedError, match=message):
        engine.instantiate(resource, params)
    assert engine.instance_count == 0


def test_a_failed_instantiation_leaves_nothing_running(engine: Engine) -> None:
    with pytest.raises(ParamsRejectedError):
        engine.instantiate("tagged", {"tag": "dead", "fail_late": True})
    CALLS.clear()
    result = engine.apply({"data": [("z", [1])]})
    assert CALLS == []
    assert result.instances == {}


def test_instantiate_during_a_tick_is_refused(engine: Engine) -> None:
    holder: dict[str, Any] = {}

    class Sneaky(Mapper):
        def map_entry(self, key: Any, values: Values) -> Pairs:
            holder["engine"].instantiate("tagged", {"tag": key})
            yield key, 1

    service = Service(
        inputs={"data": []},
        resources={"tagged": Tagged},
        create_graph=lambda ins, ctx: {"m": ins["data"].map(Sneaky)},
    )
    holder["engine"] = sneaky = Engine.for_service(service)
    with pytest.raises(GraphError, match="cannot instantiate a resource during a tick"):
        sneaky.apply({"data": [("k", [1])]})
    assert sneaky.version == 0
    assert sneaky.instance_count == 0
