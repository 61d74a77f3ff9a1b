"""Routes: a change reaches only the consumers whose output its key can change.

Counted, not timed: every test records which take/slice/map nodes were told of a change
(`source_changed`) and checks that set against the instances whose range covers the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from graph import (
    Context,
    EagerCollection,
    Engine,
    Mapper,
    Resource,
    ResourceInstance,
    Service,
    UserCodeError,
    Values,
)
from graph.nodes.map_node import MapNode
from graph.nodes.node import Node
from graph.nodes.operators import SliceNode, TakeNode
from graph.nodes.routing import TOP

KEYS = 1000


class Bad(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for v in values:
            if v == "boom":
                raise ValueError("boom")
            yield key, v


class Tag(Mapper):
    def __init__(self, tag: Any) -> None:
        self.tag = tag

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for v in values:
            yield key, [v, self.tag]


class View(Resource):
    """params: {"slices": [[a, b], ...]} or {"take": n}, on "items" or params["on"]; "tag"
    maps the result, "bad" too with a mapper that fails on "boom"; "viewer" only tells
    instances apart."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        source = collections[self.params.get("on", "items")]
        if "take" in self.params:
            out = source.take(self.params["take"])
        else:
            out = source.slices(*(tuple(r) for r in self.params["slices"]))
        if "tag" in self.params:
            out = out.map(Tag, self.params["tag"])
        if self.params.get("bad"):
            out = out.map(Bad)
        return out


def _service(keys: int = KEYS) -> Service:
    return Service(
        inputs={"items": [(i, [i]) for i in range(keys)], "few": [(i, [i]) for i in range(3)]},
        resources={"view": View},
        create_graph=lambda ins, ctx: {
            "items": ins["items"],
            "few": ins["few"],
            "top": ins["items"].take(10),
        },
    )


@pytest.fixture
def engine() -> Engine:
    return Engine.for_service(_service())


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[Node]:
    """Every take, slice and map node told of a change, in order."""
    calls: list[Node] = []
    for cls in (TakeNode, SliceNode, MapNode):
        original = cls.source_changed

        def counted(self: Any, key: Any, delta: Any, original: Any = original) -> None:
            calls.append(self)
            original(self, key, delta)

        monkeypatch.setattr(cls, "source_changed", counted)
    return calls


def _point(engine: Engine, key: Any, **extra: Any) -> ResourceInstance:
    return engine.instantiate("view", {"slices": [[key, key]], **extra})


def test_a_one_key_write_reaches_only_the_slices_covering_it(
    engine: Engine, reached: list[Node]
) -> None:
    points = {k: _point(engine, k) for k in range(KEYS)}
    spans = {a: engine.instantiate("view", {"slices": [[a, a + 4]]}) for a in range(0, KEYS, 3)}
    several = engine.instantiate("view", {"slices": [[10, 12], [500, 500], [900, 950]]})
    covering = [points[500], several, *(spans[a] for a in spans if a <= 500 <= a + 4)]
    assert len(covering) == 3  # [500, 500], [10, 12] + [500, 500] + [900, 950], [498, 502]
    reached.clear()
    result = engine.apply({"items": [(500, ["new"])]})
    assert sorted(n.id for n in reached) == sorted(inst.output.id for inst in covering)
    assert set(result.instances) == {inst.id for inst in covering}
    # A key no range covers reaches no slice at all.
    reached.clear()
    result = engine.apply({"items": [(5000, ["outside"])]})
    assert reached == []
    assert result.instances == {}


def test_a_write_of_many_keys_reaches_the_sum_of_their_instances(
    engine: Engine, reached: list[Node]
) -> None:
    """A follower's engine applying a replicated delta: the same routes."""
    mirror = Engine.mirror(_service(), ["items"])
    mirror.replace_all({"items": [(i, [i]) for i in range(KEYS)]}, 1)
    points = {k: _point(mirror, k) for k in range(0, KEYS, 2)}  # the even keys
    reached.clear()
    delta = [(k, ["v2"]) for k in range(100, 200)]  # 50 even keys, 50 odd ones
    result = mirror.apply({"items": delta}, version=2)
    assert set(reached) == {points[k].output for k in range(100, 200, 2)}
    assert len(reached) == 50
    assert set(result.instances) == {points[k].id for k in range(100, 200, 2)}


def test_take_windows_are_reached_only_up_to_their_last_key(
    engine: Engine, reached: list[Node]
) -> None:
    windows = {n: engine.instantiate("view", {"take": n}) for n in range(1, 101)}
    nodes = {n: inst.output for n, inst in windows.items()}
    assert len(set(nodes.values())) == 100
    # Past every full window's last key (the windows hold 0 .. n - 1): no take is told.
    reached.clear()
    result = engine.apply({"items": [(500, ["x"]), (5000, ["new"])]})
    assert [n for n in reached if isinstance(n, TakeNode)] == []
    assert result.instances == {}
    # At key 50: the windows whose last key is 50 or more, n >= 51 (and the shared top(10) is
    # not told: its last key is 9).
    reached.clear()
    result = engine.apply({"items": [(50, ["y"])]})
    assert set(reached) == {nodes[n] for n in range(51, 101)}
    assert set(result.instances) == {windows[n].id for n in range(51, 101)}
    # A key that enters every window (before their first key) reaches all of them.
    reached.clear()
    result = engine.apply({"items": [(-1, ["first"])]})
    assert set(reached) == {*nodes.values(), engine._shared["top"]}
    assert set(result.instances) == {inst.id for inst in windows.values()}
    assert windows[1].entries() == [(-1, ["first"])]


def test_a_short_window_is_reached_by_every_key(engine: Engine, reached: list[Node]) -> None:
    short = engine.instantiate("view", {"take": 10, "on": "few"})  # 3 keys: not full
    assert isinstance(short.output, TakeNode)
    assert short.output.bound == TOP
    reached.clear()
    result = engine.apply({"few": [(1000, ["far"])]})
    assert reached == [short.output]
    assert result.instances == {short.id: [(1000, ["far"])]}
    # Full now? Not yet (4 of 10); fill it, then a key past it no longer reaches it.
    engine.apply({"few": [(k, [k]) for k in range(3, 9)]})
    assert len(short) == 10
    assert short.output.bound != TOP
    reached.clear()
    assert engine.apply({"few": [(2000, ["further"])]}).instances == {}
    assert reached == []
    # Fewer keys than its limit: short again, then every key reaches it.
    engine.apply({"few": [(0, []), (1, []), (2000, [])]})
    assert len(short) == 8
    reached.clear()
    result = engine.apply({"few": [(3000, ["x"])]})
    assert reached == [short.output]
    assert list(result.instances) == [short.id]


def test_take_zero_is_never_reached(engine: Engine, reached: list[Node]) -> None:
    none = engine.instantiate("view", {"take": 0})
    reached.clear()
    engine.apply({"items": [(-5, [1])]})
    assert none.output not in reached
    assert none.entries() == []


def test_identical_takes_and_slices_share_one_node(engine: Engine) -> None:
    items = engine._shared["items"]
    takes = [engine.instantiate("view", {"take": 10, "viewer": i}) for i in range(1000)]
    slices = [_point(engine, 7, viewer=i) for i in range(1000)]
    # The 1,000 take(10) instances share create_graph's own take(10).
    assert {inst.output for inst in takes} == {engine._shared["top"]}
    assert len({inst.output for inst in slices}) == 1
    # The same ranges written another way are the same slice.
    same = engine.instantiate("view", {"slices": [[7, 7], [7.0, 7], [8, 3]]})
    assert same.output is slices[0].output
    result = engine.apply({"items": [(7, ["seven"]), (3, ["three"])]})
    assert set(result.instances) == {inst.id for inst in [*takes, *slices, same]}
    assert result.instances[same.id] == [(7, ["seven"])]
    for inst in [*takes, *slices, same]:
        engine.release(inst)
    # Freed: the slice is gone from the routes, create_graph's take stays.
    routes = items.routes
    assert routes is not None
    assert routes.points is None or 7 not in routes.points
    assert routes.shared is not None
    assert list(routes.shared.values()) == [engine._shared["top"]]
    assert engine.apply({"items": [(7, ["again"])]}).instances == {}


def test_freeing_every_instance_leaves_no_routes() -> None:
    engine = Engine.mirror(_service(), ["items"])
    engine.replace_all({"items": [(i, [i]) for i in range(100)]}, 1)
    instances = [
        *(_point(engine, k, tag="t") for k in range(50)),
        *(engine.instantiate("view", {"slices": [[k, k + 3]], "tag": k}) for k in range(50)),
        *(engine.instantiate("view", {"take": n, "tag": n}) for n in range(20)),
    ]
    items = engine._shared["items"]
    assert items.routes is not None
    for inst in instances:
        engine.release(inst)
    assert items.routes is None


def test_an_aborted_tick_puts_a_window_back(engine: Engine, reached: list[Node]) -> None:
    window = engine.instantiate("view", {"take": 5})
    node = window.output
    assert isinstance(node, TakeNode)
    bound = node.bound
    pending = engine.begin({"items": [(-1, ["in"])]})  # moves the window: last key 4 -> 3
    assert node.bound != bound
    pending.abort()
    assert node.bound == bound
    assert window.entries() == [(k, [k]) for k in range(5)]
    # The index agrees with the data again: key 4 still reaches it, key 5 does not.
    reached.clear()
    engine.apply({"items": [(5, ["past"])]})
    assert node not in reached
    engine.apply({"items": [(4, ["last"])]})
    assert node in reached


def test_a_rolled_back_tick_puts_a_window_back(engine: Engine) -> None:
    """The take runs before the failing map (creation order): its move is undone."""
    window = engine.instantiate("view", {"take": 3})
    engine.instantiate("view", {"slices": [[-10, 10]], "bad": True})
    node = window.output
    assert isinstance(node, TakeNode)
    bound = node.bound
    with pytest.raises(UserCodeError):
        engine.apply({"items": [(-1, ["boom"])]})
    assert node.bound == bound
    assert window.entries() == [(0, [0]), (1, [1]), (2, [2])]
    result = engine.apply({"items": [(2, ["two"])]})
    assert result.instances[window.id] == [(2, ["two"])]


def test_release_during_an_open_tick_keeps_the_routes_until_it_ends(engine: Engine) -> None:
    first = engine.instantiate("view", {"take": 3, "viewer": 1})
    second = engine.instantiate("view", {"take": 3, "viewer": 2})
    node = first.output
    assert second.output is node
    pending = engine.begin({"items": [(-1, ["in"])]})
    engine.release(first)
    engine.release(second)
    pending.abort()  # the undo moves the window back: it must still be routed
    items = engine._shared["items"]
    assert items.routes is not None
    assert items.routes.shared is not None
    assert node not in items.routes.shared.values()
    assert items.routes.windows is not None
    assert all(window is not node for window in items.routes.windows)
    assert engine.apply({"items": [(-2, ["x"])]}).instances == {}
