"""Shared helpers for the graph tests: building an engine from a create_graph function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from graph import EagerCollection, Engine, Resource, Service

CreateGraph = Callable[[Mapping[str, EagerCollection], Any], Mapping[str, EagerCollection]]
MakeEngine = Callable[..., Engine]


def build_engine(
    create_graph: CreateGraph | None,
    resources: Mapping[str, type[Resource]] | None = None,
    **inputs: list[Any],
) -> Engine:
    service = Service(inputs=inputs, resources=resources or {}, create_graph=create_graph)
    return Engine.for_service(service)


@pytest.fixture
def make_engine() -> MakeEngine:
    """`make_engine(create_graph, resources=None, **inputs)` -> Engine."""
    return build_engine
