"""Property: with many live take/slice/slices/map instances, each reached only through the
routes of its keys (graph/nodes/routing.py), every instance stays equal to a from-scratch instance,
and a tick's TickResult.instances names exactly the instances whose output changed.

Random instances are created and released (often with identical structure, so that nodes are
shared; sometimes released while a tick is open) between random writes: applied, computed then
committed or aborted, replaced wholesale, or rolled back because a mapper raised. The same
instances live on a leader (`Engine.for_service`) and on a follower's engine (`Engine.mirror`)
fed the leader's changesets by `apply` or its whole state by `replace_all`. After every tick,
on both: each live instance equals a fresh one on a fresh engine over the same data, its
entries in TickResult.instances turn its previous entries into its new ones, and the instances
listed are exactly those that changed; and every take is filed under the bound its data
implies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from graph import (
    Context,
    EagerCollection,
    Engine,
    Mapper,
    ParamsRejectedError,
    Resource,
    ResourceInstance,
    Service,
    TickResult,
    UserCodeError,
    Values,
    json_sort_key,
)
from graph.keys import sort_key
from graph.nodes.operators import TakeNode
from graph.nodes.routing import TOP

SETTINGS = settings(
    max_examples=int(os.environ.get("SKIFF_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("SKIFF_HYPOTHESIS_DERANDOMIZE") == "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FAIL = 13  # a value that makes Tag raise
KEYS: list[Any] = [None, True, -2, 0, 1, 2, 3, 4, 5, 7, "a", "b", [0], [1, 2]]
# Slice bounds: keys of `items` and of `ranked` ([-value, key]), and points between them.
BOUNDS: list[Any] = [*KEYS, 2.5, "", [-9], [-4, 3], [-2], [-1, "a"], [0, 0]]
SHARED = ("items", "ranked")
Pairs = Iterator[tuple[Any, Any]]


class Rank(Mapper):
    """key -> [-value, key] for each value: keys move as values change (take windows move)."""

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            yield [-v, key], v


class Tag(Mapper):
    """Per instance; reads `items` at the viewer's key (a dynamic dependency per instance)."""

    def __init__(self, items: EagerCollection, viewer: int) -> None:
        self.items = items
        self.viewer = viewer

    def map_entry(self, key: Any, values: Values) -> Pairs:
        seen = len(self.items.get_array(self.viewer))
        for v in values:
            if v == FAIL:
                raise ValueError("the failing value")
            yield key, [v, self.viewer, seen]


class View(Resource):
    """params {"spec": [op, collection, ...], "viewer": n}."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        op, name, *args = self.params["spec"]
        source = collections[name]
        if op in ("take", "take_map"):
            out = source.take(args[0])
        else:
            out = source.slices(*(tuple(r) for r in args[0]))
        if op.endswith("_map"):
            out = out.map(Tag, collections["items"], self.params["viewer"])
        return out


def create_graph(inputs: Mapping[str, EagerCollection], ctx: Context) -> dict[str, Any]:
    return {"items": inputs["items"], "ranked": inputs["items"].map(Rank)}


def _service(items: list[Any]) -> Service:
    return Service(inputs={"items": items}, resources={"view": View}, create_graph=create_graph)


# -- strategies -----------------------------------------------------------------------------

collection = st.sampled_from(SHARED)
ranges = st.lists(st.tuples(st.sampled_from(BOUNDS), st.sampled_from(BOUNDS)), max_size=3)
spec = st.one_of(
    st.tuples(st.sampled_from(["take", "take_map"]), collection, st.integers(0, 4)),
    st.tuples(st.sampled_from(["slices", "slices_map"]), collection, ranges),
    # One-key slices of keys that exist: the points of the routes.
    st.tuples(
        st.sampled_from(["slices", "slices_map"]),
        st.just("items"),
        st.sampled_from(KEYS).map(lambda k: [(k, k)]),
    ),
)
params = st.fixed_dictionaries({"spec": spec, "viewer": st.sampled_from([0, 1, 2])})
values = st.lists(st.integers(-3, 9) | st.just(FAIL), max_size=2)
safe_values = st.lists(st.integers(-3, 9), min_size=1, max_size=2)
batch = st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=5)
state = st.lists(st.tuples(st.sampled_from(KEYS), safe_values), max_size=8)

Action = tuple[str, Any]
action = st.one_of(
    st.tuples(st.just("create"), params),
    st.tuples(st.just("create"), params),
    st.tuples(st.just("release"), st.integers(0, 50)),
    st.tuples(st.sampled_from(["apply", "apply", "commit", "abort"]), batch),
    st.tuples(st.just("replace"), state),
    st.tuples(st.just("release_in_tick"), st.tuples(st.integers(0, 50), batch, st.booleans())),
)


# -- the run --------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _slot(key: Any) -> bytes:
    return _dumps(json_sort_key(key))


def _apply_changes(before: list[Any], changes: list[Any]) -> list[Any]:
    state = {_slot(k): (k, v) for k, v in before}
    for key, vals in changes:
        old = state.get(_slot(key), (key, []))[1]
        assert _dumps(old) != _dumps(vals), f"unchanged key {key!r} listed"
        if vals:
            state[_slot(key)] = (key, vals)
        else:
            state.pop(_slot(key), None)
    return sorted(state.values(), key=lambda kv: json_sort_key(kv[0]))


@dataclass
class Live:
    params: dict[str, Any]
    leader: ResourceInstance
    follower: ResourceInstance
    leader_entries: list[Any]
    follower_entries: list[Any]


class Run:
    def __init__(self, items: list[Any]) -> None:
        self.leader = Engine.for_service(_service(items))
        self.follower = Engine.mirror(_service([]), SHARED)
        self.follower.replace_all(self._state(), self.leader.version + 1)
        self.leader.apply({}, version=self.follower.version)
        self.live: list[Live] = []

    def _state(self) -> dict[str, list[Any]]:
        return {name: self.leader.collection_entries(name) for name in SHARED}

    def _items(self) -> list[Any]:
        return self.leader.collection_entries("items")

    def _fresh_leader(self) -> Engine:
        return Engine.for_service(_service(self._items()))

    def _fresh_follower(self) -> Engine:
        fresh = Engine.mirror(_service([]), SHARED)
        fresh.replace_all(self._state(), 1)
        return fresh

    # -- actions --------------------------------------------------------------------------
    def create(self, p: dict[str, Any]) -> None:
        try:
            leader = self.leader.instantiate("view", p)
        except ParamsRejectedError:
            event("an instance's mapper raised on creation")
            return
        follower = self.follower.instantiate("view", p)
        event("an instance created")
        self.live.append(Live(p, leader, follower, leader.entries(), follower.entries()))
        self.check_instances(self._fresh_leader(), self._fresh_follower())

    def release(self, index: int) -> None:
        if self.live:
            item = self.live.pop(index % len(self.live))
            self.leader.release(item.leader)
            self.follower.release(item.follower)

    def write(self, mode: str, writes: list[Any]) -> None:
        batch = {"items": writes}
        before = _dumps([self._state(), [i.leader.entries() for i in self.live]])
        try:
            if mode == "replace":
                result = self.leader.replace_all(batch, self.leader.version + 1)
            elif mode == "apply":
                result = self.leader.apply(batch)
            else:
                pending = self.leader.begin(batch)
                if mode == "abort":
                    pending.abort()
                    event("aborted")
                    assert _dumps([self._state(), [i.leader.entries() for i in self.live]]) == (
                        before
                    )
                    return
                pending.commit()
                result = pending.result
        except UserCodeError:
            event("rolled back")
            assert _dumps([self._state(), [i.leader.entries() for i in self.live]]) == before
            return
        self.follow(result, full=mode == "replace")

    def release_in_tick(self, index: int, writes: list[Any], commit: bool) -> None:
        """Release an instance while a computed tick is open (its nodes are freed after)."""
        if not self.live:
            return
        try:
            pending = self.leader.begin({"items": writes})
        except UserCodeError:
            return
        item = self.live.pop(index % len(self.live))
        self.leader.release(item.leader)
        self.follower.release(item.follower)
        if not commit:
            pending.abort()
            event("released in an aborted tick")
            return
        pending.commit()
        event("released in a committed tick")
        # The result was computed before the release: it may still name the instance.
        gone = item.leader.id if item.leader.refs == 0 else None  # not another handle's
        self.follow(pending.result, full=False, released=gone)

    def follow(self, result: TickResult, full: bool, released: int | None = None) -> None:
        """The follower replays the tick (a changeset, or the whole state), then both are
        checked."""
        if full:
            mirrored = self.follower.replace_all(self._state(), result.version)
        else:
            changes = {name: list(entries) for name, entries in result.shared.changes.items()}
            mirrored = self.follower.apply(changes, version=result.version)
        self.check_instances(
            self._fresh_leader(), self._fresh_follower(), result, mirrored, released
        )

    # -- checks ---------------------------------------------------------------------------
    def check_windows(self) -> None:
        """White-box: every live take is filed under the bound its data implies (after an
        abort or a rollback too: the undo must move it back)."""
        for item in self.live:
            for inst in (item.leader, item.follower):
                for node in inst.nodes:
                    if isinstance(node, TakeNode) and node.limit > 0:
                        keys = sorted(sort_key(k) for k in node.keys())
                        expected = keys[-1] if len(keys) == node.limit else TOP
                        assert node.bound == expected
                        routes = node.sources[0].routes
                        assert routes is not None and routes.windows is not None
                        assert node in routes.windows

    def check_instances(
        self,
        fresh_leader: Engine,
        fresh_follower: Engine,
        result: TickResult | None = None,
        mirrored: TickResult | None = None,
        released: int | None = None,
    ) -> None:
        changed_leader: set[int] = set()
        changed_follower: set[int] = set()
        for item in self.live:
            expected = _dumps(fresh_leader.instantiate("view", item.params).entries())
            for engine_name, inst, previous, changed, res, fresh in (
                ("leader", item.leader, item.leader_entries, changed_leader, result, None),
                (
                    "follower",
                    item.follower,
                    item.follower_entries,
                    changed_follower,
                    mirrored,
                    fresh_follower,
                ),
            ):
                now = inst.entries()
                assert _dumps(now) == expected, engine_name
                if fresh is not None:
                    assert _dumps(fresh.instantiate("view", item.params).entries()) == expected
                if res is not None:
                    listed = res.instances.get(inst.id, [])
                    assert _dumps(_apply_changes(previous, listed)) == _dumps(now), engine_name
                if _dumps(now) != _dumps(previous):
                    changed.add(inst.id)
            item.leader_entries = item.leader.entries()
            item.follower_entries = item.follower.entries()
        if result is not None and mirrored is not None:
            assert set(result.instances) - {released} == changed_leader
            assert set(mirrored.instances) == changed_follower
            event(f"instances updated in a tick: {min(len(changed_leader), 3)}+")
            event(f"instances live in a tick: {min(len(self.live), 10)}+")


@SETTINGS
@given(state, st.lists(action, min_size=4, max_size=40))
def test_instances_are_reached_exactly_when_they_change(
    items: list[Any], actions: list[Action]
) -> None:
    initial = {_slot(k): (k, v) for k, v in items}
    run = Run(list(initial.values()))
    for kind, arg in actions:
        if kind == "create":
            run.create(arg)
        elif kind == "release":
            run.release(arg)
        elif kind == "release_in_tick":
            run.release_in_tick(*arg)
        else:
            run.write(kind, arg)
        run.check_windows()
