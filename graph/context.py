"""Context: what create_graph and Resource.instantiate receive besides collections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from graph.claims import current_claims
from graph.collections import EagerCollection
from graph.errors import UserCodeError
from graph.json_extract.extract import json_extract
from graph.nodes.lazy import LazyCollection

if TYPE_CHECKING:
    from graph.host import Host
    from graph.nodes.lazy import ComputeFn


class Context:
    __slots__ = ("_engine",)

    def __init__(self, engine: Host) -> None:
        self._engine = engine

    @property
    def claims(self) -> Mapping[str, Any]:
        """The verified claims of the request whose instance is being built, as a read-only
        mapping; what `instantiate` reads of it keys the instance (graph/claims.py). Empty
        with auth off, for an anonymous request, and outside a resource's build."""
        return current_claims()

    def create_lazy_collection(self, compute: type[ComputeFn], *args: Any) -> LazyCollection:
        try:
            instance = compute(*args)
        except Exception as err:
            raise UserCodeError(
                f"lazy compute {compute.__name__} could not be constructed: {err!r}"
            ) from err
        return LazyCollection(self._engine, instance, self)

    def use_external_resource(
        self, service: str, identifier: str, params: Any = None
    ) -> EagerCollection:
        """The eager collection of `identifier` (with `params`) from the external service named
        `service` in Service.external_services: shared by every identical request, and kept up
        to date by the service (graph/external.py)."""
        return EagerCollection(self._engine.use_external(service, identifier, params))

    def json_extract(self, value: Any, pattern: str) -> list[Any]:
        """Skip's `context.jsonExtract`: the matches of `pattern` in the JSON object `value`
        (graph/json_extract/). A pure function, also importable as `graph.json_extract` for code
        that has no context, such as a mapper."""
        return json_extract(value, pattern)
