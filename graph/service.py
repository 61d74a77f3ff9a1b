"""Service: the definition a user writes — inputs, resources and the shared graph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graph.errors import GraphError

if TYPE_CHECKING:
    from graph.api import Resource
    from graph.collections import EagerCollection
    from graph.context import Context
    from graph.external import ExternalService

CreateGraph = Callable[
    [Mapping[str, "EagerCollection"], "Context"], Mapping[str, "EagerCollection"]
]


@dataclass(frozen=True)
class Service:
    """inputs: initial entries per input collection; resources: name -> Resource class;
    create_graph(inputs, context) returns the shared collections by name."""

    inputs: Mapping[str, Sequence[Any]]
    resources: Mapping[str, type[Resource]]
    create_graph: CreateGraph | None = None
    name: str = field(default="skiff")
    #: External services by name (graph/external.py), for `context.use_external_resource`.
    external_services: Mapping[str, ExternalService] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, names in (("input", self.inputs), ("resource", self.resources)):
            for key in names:
                if not isinstance(key, str) or not key:
                    raise GraphError(f"{label} names must be non-empty strings, got {key!r}")
        for name, resource in self.resources.items():
            # A class missing `instantiate` would fail on its first request; say so at load.
            missing = sorted(getattr(resource, "__abstractmethods__", ()))
            if missing:
                raise GraphError(
                    f"resource {name!r}: {resource.__name__} does not define {', '.join(missing)}"
                )

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def resource_names(self) -> tuple[str, ...]:
        return tuple(self.resources)
