"""Property tests: the incremental engine agrees with a from-scratch recomputation.

For random graphs (chains of map — including mappers that read other collections, their
sizes and a self-recursive lazy collection — reduce, take, slice, merge) and random write
sequences (inserts, updates, deletes, multi-key batches, resource instances created and
released, and writes that make user code raise), after every tick:

- every collection equals what a fresh `Engine.for_service` computes from the current inputs;
- applying the tick's changeset to the previous state gives the new state, and the changeset
  lists exactly the changed keys, in key order;
- every live resource instance agrees with a fresh instance over the fresh engine, and its
  entries in TickResult.instances turn its previous entries into its new ones;
- a tick that raised left everything as it was (version included).

Reproduce a failure with `--hypothesis-seed=N`; set SKIFF_HYPOTHESIS_DERANDOMIZE=1 for a fixed
sequence of examples (CI), SKIFF_HYPOTHESIS_EXAMPLES to run more.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broker.store.codec import DeltaEntry
from graph import (
    Context,
    Count,
    EagerCollection,
    Engine,
    LazyCollection,
    LazyCompute,
    Mapper,
    Max,
    Min,
    ParamsRejectedError,
    Reducer,
    Resource,
    ResourceInstance,
    Service,
    Sum,
    UserCodeError,
    Values,
    json_sort_key,
)

SETTINGS = settings(
    max_examples=int(os.environ.get("SKIFF_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("SKIFF_HYPOTHESIS_DERANDOMIZE") == "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys of every JSON type, including the pairs Python confuses (True/1, False/0).
POOL: list[Any] = [None, False, True, -1, 0, 1, 2, 2.5, "x", "y", [0], [0, 1], {"k": 0}]
FAIL = 13  # a value that makes every piece of user code raise
INPUTS = ("a", "b", "c")
Pairs = Iterator[tuple[Any, Any]]


# Writes also use other spellings of pool keys: 1.0 is the key 1, -0.0 the key 0.
WRITE_KEYS: list[Any] = [*POOL, 1.0, -0.0, [0.0, 1.0]]


def _pool(v: int) -> Any:
    return POOL[v % len(POOL)]


def _check(v: Any) -> None:
    if v == FAIL:
        raise ValueError("the failing value")


# -- user code -------------------------------------------------------------------------------------


class Identity(Mapper):
    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield key, v


class Rekey(Mapper):
    """Several source keys feed one output key."""

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield _pool(v), v


class Fanout(Mapper):
    """Several output keys per source key, sometimes the same one twice."""

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield key, v
            yield _pool(v + 1), -v
            if v % 2:
                yield key, v + 100


class Lookup(Mapper):
    """Dynamic reads of another collection, at a key that depends on the value."""

    def __init__(self, other: EagerCollection) -> None:
        self.other = other

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            found = self.other.get_array(_pool(v))
            yield key, v * 10 + len(found)
            for f in found[:2]:
                yield key, f


class Unique(Mapper):
    def __init__(self, other: EagerCollection) -> None:
        self.other = other

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield key, self.other.get_unique(_pool(v), default=-100)


class Size(Mapper):
    def __init__(self, other: EagerCollection) -> None:
        self.other = other

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield key, v + self.other.size()


class Accumulate(LazyCompute):
    """At an int key k > 0: the source's values at k and the sum of this collection at k - 1."""

    def __init__(self, source: EagerCollection) -> None:
        self.source = source

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        values = self.source.get_array(key)
        for v in values:
            _check(v)
        if type(key) is int and key > 0:
            return [*values, sum(self_collection.get_array(key - 1))]
        return values


class Shifted(LazyCompute):
    """A lazy collection over another lazy collection."""

    def __init__(self, inner: LazyCollection) -> None:
        self.inner = inner

    def compute(self, self_collection: LazyCollection, key: Any, context: Context) -> Any:
        return [v + 1 for v in self.inner.get_array(key)]


class ReadLazy(Mapper):
    def __init__(self, lazy: LazyCollection) -> None:
        self.lazy = lazy

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for v in values:
            _check(v)
            yield key, sum(self.lazy.get_array(_pool(v))) + v


class SumRecompute(Reducer):
    """A sum whose `remove` gives up on odd values (None: recompute the key)."""

    initial = 0

    def add(self, acc: Any, value: Any) -> Any:
        _check(value)
        return acc + value

    def remove(self, acc: Any, value: Any) -> Any:
        return None if value % 2 else acc - value


MAPPERS: dict[str, type[Mapper]] = {
    "identity": Identity,
    "rekey": Rekey,
    "fanout": Fanout,
    "lookup": Lookup,
    "unique": Unique,
    "size": Size,
    "lazy": ReadLazy,
    "lazy_of_lazy": ReadLazy,
}
READING = {"lookup", "unique", "size"}
REDUCERS: dict[str, type[Reducer]] = {
    "count": Count,
    "sum": Sum,
    "min": Min,
    "max": Max,
    "sum_recompute": SumRecompute,
}


# -- graphs ---------------------------------------------------------------------------------------

Step = tuple[Any, ...]


def _apply_step(
    step: Step, colls: list[EagerCollection], lazies: dict[int, LazyCollection], ctx: Context
) -> EagerCollection:
    op, src = step[0], colls[step[1]]
    if op == "map":
        kind, arg = step[2], step[3]
        if kind in READING:
            return src.map(MAPPERS[kind], colls[arg])
        if kind in ("lazy", "lazy_of_lazy"):
            if arg not in lazies:  # one lazy per source collection, shared by its readers
                lazies[arg] = ctx.create_lazy_collection(Accumulate, colls[arg])
            lazy = lazies[arg]
            if kind == "lazy_of_lazy":
                if -1 - arg not in lazies:
                    lazies[-1 - arg] = ctx.create_lazy_collection(Shifted, lazy)
                lazy = lazies[-1 - arg]
            return src.map(ReadLazy, lazy)
        return src.map(MAPPERS[kind])
    if op == "reduce":
        return src.reduce(REDUCERS[step[2]])
    if op == "map_reduce":
        return src.map_reduce(Rekey, REDUCERS[step[2]])
    if op == "take":
        return src.take(step[2])
    if op == "slice":
        return src.slice(POOL[step[2]], POOL[step[3]])
    if op == "slices":
        return src.slices((POOL[step[2]], POOL[step[3]]), (POOL[step[4]], POOL[step[5]]))
    assert op == "merge"
    return src.merge(*(colls[i] for i in step[2]))


def create_graph_for(steps: tuple[Step, ...]) -> Any:
    def create_graph(inputs: Mapping[str, EagerCollection], ctx: Context) -> dict[str, Any]:
        colls = [inputs[name] for name in INPUTS]
        lazies: dict[int, LazyCollection] = {}
        for step in steps:
            colls.append(_apply_step(step, colls, lazies, ctx))
        return {f"c{i}": c for i, c in enumerate(colls)}

    return create_graph


class View(Resource):
    """An instance: one step (a fresh lazy if it needs one) over the shared collections."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        colls = [collections[f"c{i}"] for i in range(len(collections))]
        return _apply_step(tuple(self.params), colls, {}, context)


def _service(steps: tuple[Step, ...], inputs: Mapping[str, list[Any]]) -> Service:
    return Service(inputs=inputs, resources={"view": View}, create_graph=create_graph_for(steps))


@st.composite
def steps_over(draw: st.DrawFn, count: int) -> Step:
    """One step over collections 0..count-1."""
    src = draw(st.integers(0, count - 1))
    any_coll = st.integers(0, count - 1)
    pool_index = st.integers(0, len(POOL) - 1)
    op = draw(
        st.sampled_from(
            ["map", "map", "map", "reduce", "map_reduce", "take", "slice", "slices", "merge"]
        )
    )
    if op == "map":
        return ("map", src, draw(st.sampled_from(sorted(MAPPERS))), draw(any_coll))
    if op in ("reduce", "map_reduce"):
        return (op, src, draw(st.sampled_from(sorted(REDUCERS))))
    if op == "take":
        return ("take", src, draw(st.integers(0, 4)))
    if op == "slice":
        return ("slice", src, draw(pool_index), draw(pool_index))
    if op == "slices":
        return ("slices", src, *(draw(pool_index) for _ in range(4)))
    return ("merge", src, tuple(draw(st.lists(any_coll, min_size=1, max_size=2))))


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Step, ...]:
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 8))):
        steps.append(draw(steps_over(len(INPUTS) + len(steps))))
    return tuple(steps)


safe_values_st = st.lists(st.integers(-3, 9), max_size=3)
values_st = st.lists(st.integers(-3, FAIL), max_size=3)  # now and then the failing value


def entries_st(values: Any) -> Any:
    return st.lists(st.tuples(st.sampled_from(POOL), values), max_size=4)


batch_st = st.dictionaries(
    st.sampled_from(INPUTS),
    st.lists(st.tuples(st.sampled_from(WRITE_KEYS), values_st), min_size=1, max_size=4),
    max_size=3,
)
state_st = st.fixed_dictionaries(
    {},
    optional={
        name: st.lists(st.tuples(st.sampled_from(POOL), values_st), max_size=5) for name in INPUTS
    },
)


@dataclass
class Live:
    """A live instance on the leader and its twin on the follower."""

    params: list[Any]
    instance: ResourceInstance
    twin: ResourceInstance
    entries: list[Any] = field(default_factory=list)


# -- state helpers --------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    """Strict JSON identity: true is not 1, 1.0 is not 1."""
    return orjson.dumps(value)


def _slot(key: Any) -> bytes:
    return _dumps(json_sort_key(key))  # one slot per key: 1 and 1.0 share one


def _apply_changes(before: list[Any], changes: Any) -> list[Any]:
    """Apply a changeset's entries for one collection; check their shape on the way."""
    state = {_slot(k): (k, v) for k, v in before}
    keys = [json_sort_key(k) for k, _ in changes]
    assert keys == sorted(keys) and len({_dumps(k) for k in keys}) == len(keys), "key order"
    for key, values in changes:
        old = state.get(_slot(key), (key, []))[1]
        assert _dumps(old) != _dumps(values), f"unchanged key {key!r} listed in the changeset"
        if values:
            state[_slot(key)] = (key, values)
        else:
            state.pop(_slot(key), None)
    return sorted(state.values(), key=lambda kv: json_sort_key(kv[0]))


Model = dict[str, dict[bytes, Any]]


def _model_apply(model: Model, batch: Mapping[str, list[Any]]) -> None:
    for name, entries in batch.items():
        for key, values in entries:
            if values:
                model[name][_slot(key)] = (key, list(values))
            else:
                model[name].pop(_slot(key), None)


# -- the property ----------------------------------------------------------------------------------

Action = tuple[str, Any]
WRITE_MODES = ["apply", "apply", "apply", "commit", "abort"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[Step, ...], dict[str, list[Any]], list[Action]]:
    steps = draw(graphs())
    initial = {name: draw(entries_st(safe_values_st)) for name in INPUTS}
    count = len(INPUTS) + len(steps)
    actions: list[Action] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["write"] * 6 + ["instantiate", "release", "replace"]))
        if kind == "write":
            actions.append((draw(st.sampled_from(WRITE_MODES)), draw(batch_st)))
        elif kind == "replace":
            actions.append(("replace", draw(state_st)))
        elif kind == "instantiate":
            actions.append(("instantiate", list(draw(steps_over(count)))))
        else:
            actions.append(("release", draw(st.integers(0, 3))))
    return steps, initial, actions


class Run:
    """A leader engine, a follower mirroring it through encoded changesets, and a model of the
    inputs from which every state is recomputed from scratch."""

    def __init__(self, steps: tuple[Step, ...], initial: dict[str, list[Any]]) -> None:
        self.steps = steps
        self.model: Model = {name: {} for name in INPUTS}
        _model_apply(self.model, initial)
        self.leader = Engine.for_service(self._service())
        self.follower = Engine.mirror(self._service(), self.leader.shared_names)
        self.live: list[Live] = []
        self.released: set[int] = set()
        # The follower starts from a snapshot of the leader (both at version 1).
        self.leader.apply({})
        self.follower.replace_all(self._shared_state(self.leader), 1)

    def _service(self) -> Service:
        inputs = {name: list(self.model[name].values()) for name in INPUTS}
        return Service(
            inputs=inputs, resources={"view": View}, create_graph=create_graph_for(self.steps)
        )

    @staticmethod
    def _shared_state(engine: Engine) -> dict[str, list[Any]]:
        return {name: engine.collection_entries(name) for name in engine.shared_names}

    def snapshot(self) -> bytes:
        return _dumps(
            [
                self.leader.version,
                self._shared_state(self.leader),
                [item.instance.entries() for item in self.live],
            ]
        )

    # -- actions --------------------------------------------------------------------------------
    def instantiate(self, params: list[Any]) -> None:
        fresh = Engine.for_service(self._service())
        try:
            expected = fresh.instantiate("view", params).entries()
        except ParamsRejectedError:
            expected = None
        try:
            instance = self.leader.instantiate("view", params)
        except ParamsRejectedError:
            event("an instance rejected")
            assert expected is None
            return
        event("an instance created")
        assert expected is not None
        assert _dumps(instance.entries()) == _dumps(expected)
        twin = self.follower.instantiate("view", params)
        assert _dumps(twin.entries()) == _dumps(expected)
        self.live.append(Live(params, instance, twin, instance.entries()))

    def release(self, index: int) -> None:
        if self.live:
            item = self.live.pop(index % len(self.live))
            self.leader.release(item.instance)
            self.follower.release(item.twin)
            if item.instance.refs == 0:
                self.released.add(item.instance.id)

    def write(self, mode: str, batch: Any) -> None:
        before = self.snapshot()
        previous = self._shared_state(self.leader)
        try:
            if mode == "replace":
                result = self.leader.replace_all(batch, self.leader.version + 1)
            elif mode == "apply":
                result = self.leader.apply(batch)
            else:
                pending = self.leader.begin(batch)
                result = pending.result
                if mode == "abort":
                    pending.abort()
                    event("a computed tick aborted")
                    assert self.snapshot() == before
                    return
                pending.commit()
        except UserCodeError:
            event("a tick rolled back")
            assert self.snapshot() == before  # rolled back, version included
            return
        event("a tick applied")
        if mode == "replace":
            self.model = {name: {} for name in INPUTS}
        _model_apply(self.model, batch)
        self.check(result, previous)

    # -- the checks -----------------------------------------------------------------------------
    def check(self, result: Any, previous: dict[str, list[Any]]) -> None:
        leader = self.leader
        assert result.version == leader.version
        fresh = Engine.for_service(self._service())
        for name in leader.shared_names:
            now = leader.collection_entries(name)
            assert _dumps(now) == _dumps(fresh.collection_entries(name)), name
            changes = result.shared.changes.get(name, ())
            assert _dumps(_apply_changes(previous[name], changes)) == _dumps(now), name
        assert set(result.shared.changes) <= set(leader.shared_names)
        assert set(result.instances) <= {item.instance.id for item in self.live}
        assert not set(result.instances) & self.released
        # The follower replays the changeset as the leader publishes it (through Redis).
        delta = DeltaEntry(result.version, "e", 1, 0, result.shared.changes)
        published = DeltaEntry.decode(delta.encode())
        mirrored = self.follower.apply(
            {name: list(entries) for name, entries in published.changes.items()},
            version=published.version,
        )
        assert self.follower.version == leader.version
        assert _dumps(self._shared_state(self.follower)) == _dumps(self._shared_state(leader))
        for item in self.live:
            now = item.instance.entries()
            assert _dumps(now) == _dumps(fresh.instantiate("view", item.params).entries())
            instance_changes = result.instances.get(item.instance.id, [])
            assert _dumps(_apply_changes(item.entries, instance_changes)) == _dumps(now)
            assert _dumps(item.twin.entries()) == _dumps(now)
            assert _dumps(mirrored.instances.get(item.twin.id, [])) == _dumps(instance_changes)
            item.entries = now


def _dedupe(entries: list[Any]) -> list[Any]:
    """Initial entries with one entry per key (the last), as a service would declare them."""
    model: dict[bytes, Any] = {}
    for key, values in entries:
        model[_slot(key)] = (key, values)
    return [kv for kv in model.values() if kv[1]]


@SETTINGS
@given(scenarios())
def test_incremental_equals_from_scratch(
    scenario: tuple[tuple[Step, ...], dict[str, list[Any]], list[Action]],
) -> None:
    steps, initial, actions = scenario
    try:
        run = Run(steps, {name: _dedupe(entries) for name, entries in initial.items()})
    except UserCodeError:
        event("the initial state makes user code raise")  # e.g. a sum that reaches FAIL
        return
    for kind, arg in actions:
        if kind == "instantiate":
            run.instantiate(arg)
        elif kind == "release":
            run.release(arg)
        else:
            run.write(kind, arg)


# -- key order against an independent reference --------------------------------------------------


json_keys = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


def _rank(v: Any) -> int:
    if v is None:
        return 0
    if v is False:
        return 1
    if v is True:
        return 2
    if isinstance(v, int | float):
        return 3
    if isinstance(v, str):
        return 4
    return 5 if isinstance(v, list) else 6


def _reference_compare(a: Any, b: Any) -> int:
    """docs/protocol.md's order, written independently of graph/keys.py."""
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra in (3, 4):
        return int(a > b) - int(a < b)
    if ra == 5:
        for x, y in zip(a, b, strict=False):
            c = _reference_compare(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ra == 6:
        pa, pb = sorted(a.items()), sorted(b.items())
        for (ka, va), (kb, vb) in zip(pa, pb, strict=False):
            if ka != kb:
                return -1 if ka < kb else 1
            c = _reference_compare(va, vb)
            if c:
                return c
        return (len(pa) > len(pb)) - (len(pa) < len(pb))
    return 0


@SETTINGS
@given(st.lists(json_keys, max_size=8))
def test_key_order_matches_the_reference(keys: list[Any]) -> None:
    ours = sorted(keys, key=json_sort_key)
    reference = sorted(keys, key=functools.cmp_to_key(_reference_compare))
    assert [json_sort_key(k) for k in ours] == [json_sort_key(k) for k in reference]
    for a in keys:
        for b in keys:
            same = _reference_compare(a, b) == 0
            assert (json_sort_key(a) == json_sort_key(b)) is same
