"""ResourceInstance: one live (resource, params) query over the graph, shared and refcounted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graph.keys import hkey, unkey

if TYPE_CHECKING:
    from graph.changeset import Entry
    from graph.lazy import LazyCollection
    from graph.node import Node


@dataclass(eq=False)
class ResourceInstance:
    id: int
    resource: str
    params: Any
    canonical_params: bytes
    output: Node
    nodes: list[Node] = field(default_factory=list)
    lazies: list[LazyCollection] = field(default_factory=list)
    refs: int = 1

    def entries(self) -> list[Entry]:
        """The whole content in key order."""
        node = self.output
        return [(unkey(k), list(node.get(k) or ())) for k in node.ordered_keys()]

    def lookup(self, key: Any) -> list[Any]:
        return list(self.output.get(hkey(key)) or ())

    def __len__(self) -> int:
        return len(self.output)
