"""Host: what the nodes of a graph need of the engine that owns them.

A protocol, so that nodes, operators and lazy collections depend on this small surface rather
than on graph/engine.py, which builds them (an import circle otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from graph.tick import Tick


class Host(Protocol):
    #: The tick in progress, if any: changes made now are journaled and propagated.
    tick: Tick | None
    #: The graph.context.Context handed to user code (lazy computes, mappers that take it).
    context: Any

    def register_node(self, node: Any) -> int:
        """A new node joins the graph; returns its id (creation order, a topological order)."""

    def register_lazy(self, lazy: Any) -> None:
        """A new lazy collection joins the graph."""

    def register_reuse(self, node: Any) -> None:
        """A shared structural node was handed out again (to the instance being built)."""

    def external_closed(self, collection: Any) -> None:
        """An external collection lost its last user (graph/external.py)."""

    def use_external(self, service: str, identifier: str, params: Any) -> Any:
        """The node of an external resource (graph/externals.py)."""
