"""The base classes user code derives from: what a subclass must define fails early."""

from __future__ import annotations

from typing import Any

import pytest

from graph import GraphError, LazyCompute, Mapper, Reducer, Resource, Service


class NoInstantiate(Resource):
    pass


class NoMapEntry(Mapper):
    pass


class NoAdd(Reducer):
    pass


class NoCompute(LazyCompute):
    pass


def test_a_resource_without_instantiate_is_refused_when_the_service_is_defined() -> None:
    with pytest.raises(GraphError, match="resource 'r': NoInstantiate does not define instantiate"):
        Service(inputs={}, resources={"r": NoInstantiate})


@pytest.mark.parametrize(
    ("cls", "method"), [(NoMapEntry, "map_entry"), (NoAdd, "add"), (NoCompute, "compute")]
)
def test_a_subclass_missing_its_method_cannot_be_created(cls: type[Any], method: str) -> None:
    with pytest.raises(TypeError, match=method):
        cls()


def test_what_a_subclass_may_leave_out() -> None:
    class Counting(Reducer):
        initial = 0

        def add(self, acc: Any, value: Any) -> Any:
            return acc + value

    # `remove` defaults to "recompute this key from `initial`".
    assert Counting().remove(3, 1) is None
    assert Counting().add(Counting.initial, 2) == 2
