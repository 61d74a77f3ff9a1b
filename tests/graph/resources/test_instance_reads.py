"""Reads inside Resource.instantiate are tracked: when one changes, the instance is rebuilt in
the tick and its change is reported; a live instance always equals a fresh one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph import (
    Context,
    EagerCollection,
    Engine,
    GraphError,
    KeyLookupError,
    Mapper,
    Resource,
    Service,
    Values,
)
from tests.support.reading_resource import Filter


class Picked(Resource):
    """The issue's reproduction: read input1 at params, keep input2's values listed there."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        ids = collections["input1"].get_array(self.params)
        return collections["input2"].map(Filter, ids)


class Sized(Resource):
    """Reads a size and a unique value (absent: an error the resource catches)."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        limit = collections["input1"].size()
        try:
            first = collections["input1"].get_unique(0)
        except KeyLookupError:
            first = None
        taken = collections["input2"].take(limit)
        return taken if first != "explode" else taken.map(Explode)


class Explode(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        raise ValueError("exploded")


def service(input1: list[Any], input2: list[Any]) -> Service:
    def create(inputs: Mapping[str, EagerCollection], context: Context) -> dict[str, Any]:
        return dict(inputs)

    return Service(
        inputs={"input1": input1, "input2": input2},
        resources={"picked": Picked, "sized": Sized},
        create_graph=create,
    )


def test_the_issue_reproduction() -> None:
    engine = Engine.for_service(service([(1, [1, 2])], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    assert inst.entries() == [(1, [1])]
    result = engine.apply({"input1": [(1, [])]})
    assert result.instances == {inst.id: [(1, [])]}
    assert inst.entries() == []
    # A later client with the same params shares the (rebuilt) instance.
    again = engine.instantiate("picked", 1)
    assert again is inst and again.entries() == []
    result = engine.apply({"input1": [(1, [1])]})
    assert result.instances == {inst.id: [(1, [1])]}


def test_a_change_to_the_mapped_input_is_an_ordinary_update() -> None:
    engine = Engine.for_service(service([(1, [1, 2])], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    result = engine.apply({"input2": [(2, [2, 3])]})
    assert result.instances == {inst.id: [(2, [2])]}
    assert inst.reads is not None


def test_an_instance_that_read_nothing_holds_no_reads() -> None:
    engine = Engine.for_service(service([], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    assert inst.reads is not None  # it read input1 at 1 (absent): that is a read
    plain = Engine.for_service(service([], []))
    assert plain.instantiate("sized", None).reads is not None


def test_size_and_absent_keys_are_reads_too() -> None:
    engine = Engine.for_service(service([], [(k, [k]) for k in range(5)]))
    inst = engine.instantiate("sized", None)
    assert inst.entries() == []
    result = engine.apply({"input1": [("a", [1]), ("b", [1])]})
    assert inst.entries() == [(0, [0]), (1, [1])]
    assert result.instances == {inst.id: [(0, [0]), (1, [1])]}


def test_an_aborted_tick_puts_the_old_build_back() -> None:
    engine = Engine.for_service(service([(1, [1, 2])], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    output = inst.output
    pending = engine.begin({"input1": [(1, [])]})
    assert pending.result.instances == {inst.id: [(1, [])]}
    pending.abort()
    assert inst.output is output and inst.entries() == [(1, [1])]
    # Still tracked: the next change rebuilds it.
    assert engine.apply({"input1": [(1, [])]}).instances == {inst.id: [(1, [])]}


def test_a_failed_tick_puts_the_old_build_back() -> None:
    engine = Engine.for_service(service([(1, [1, 2])], [(1, [1])]))
    inst = engine.instantiate("sized", None)
    with pytest.raises(GraphError):
        engine.apply({"input1": [(0, ["explode"])], "nope": []})
    assert inst.entries() == [(1, [1])]


def test_a_resource_that_fails_to_rebuild_is_reported() -> None:
    engine = Engine.for_service(service([], [(k, [k]) for k in range(3)]))
    inst = engine.instantiate("sized", None)
    result = engine.apply({"input1": [(0, ["explode"])]})
    assert set(result.failed) == {inst.id}
    assert "exploded" in result.failed[inst.id]
    assert inst.id not in result.instances
    assert inst.entries() == []  # the old build, no longer tracked
    assert engine.apply({"input1": [(0, ["calm"])]}).instances == {}
    engine.release(inst)


def test_release_forgets_the_reads() -> None:
    engine = Engine.for_service(service([(1, [1])], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    engine.release(inst)
    assert engine.apply({"input1": [(1, [])]}).instances == {}
    node = engine._collection("input1")
    assert not node.readers


def test_release_during_an_open_tick_after_a_rebuild() -> None:
    engine = Engine.for_service(service([(1, [1])], [(1, [1])]))
    inst = engine.instantiate("picked", 1)
    pending = engine.begin({"input1": [(1, [])]})
    engine.release(inst)
    pending.commit()
    assert engine.instances() == []
    assert engine.apply({"input2": [(1, [2])]}).instances == {}


# -- a live instance always equals a fresh one -------------------------------------------------
KEYS = st.integers(0, 4)
VALUES = st.lists(st.integers(0, 4), max_size=3)
WRITE = st.tuples(st.sampled_from(["input1", "input2"]), KEYS, VALUES)
STEP = st.one_of(
    st.tuples(st.just("write"), st.lists(WRITE, min_size=1, max_size=3)),
    st.tuples(st.just("abort"), st.lists(WRITE, min_size=1, max_size=3)),
    st.tuples(st.just("open"), st.sampled_from(["picked", "sized"]), KEYS),
    st.tuples(st.just("close"), st.integers(0, 10)),
)


def _dumps(entries: Any) -> bytes:
    return orjson.dumps(entries, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=25))
def test_a_live_instance_always_equals_a_fresh_one(steps: list[Any]) -> None:
    engine = Engine.for_service(service([(1, [1, 2])], [(1, [1]), (2, [2])]))
    live: list[Any] = []
    seen: dict[int, list[Any]] = {}
    for step in steps:
        if step[0] in ("write", "abort"):
            batch: dict[str, list[Any]] = {}
            for name, key, values in step[1]:
                batch.setdefault(name, []).append((key, values))
            pending = engine.begin(batch)
            if step[0] == "abort":
                pending.abort()
                continue
            pending.commit()
            result = pending.result
            for inst in list(live):
                if inst.id in result.failed:
                    live.remove(inst)
                    engine.release(inst)
                    continue
                # What the readers hold, moved by the tick's change, is the instance.
                current = {orjson.dumps(k): (k, v) for k, v in seen[inst.id]}
                for key, values in result.instances.get(inst.id, []):
                    if values:
                        current[orjson.dumps(key)] = (key, values)
                    else:
                        current.pop(orjson.dumps(key), None)
                held = sorted(current.values(), key=lambda kv: _dumps(kv[0]))
                now = sorted(inst.entries(), key=lambda kv: _dumps(kv[0]))
                assert _dumps(held) == _dumps(now)
                seen[inst.id] = inst.entries()
        elif step[0] == "open":
            try:
                inst = engine.instantiate(step[1], step[2])
            except GraphError:
                continue
            live.append(inst)
            seen[inst.id] = inst.entries()
        elif live:
            inst = live.pop(step[1] % len(live))
            engine.release(inst)
        # Every live instance equals the same resource built afresh on the current state.
        fresh = Engine.for_service(
            service(engine.collection_entries("input1"), engine.collection_entries("input2"))
        )
        for inst in live:
            try:
                expected = fresh.instantiate(inst.resource, inst.params).entries()
            except GraphError:
                continue  # the resource cannot be built on this state (it failed above)
            assert _dumps(inst.entries()) == _dumps(expected)
