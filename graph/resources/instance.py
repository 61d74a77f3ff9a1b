"""ResourceInstance: one live (resource, params) query over the graph, shared and refcounted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graph.keys import hkey, unkey

if TYPE_CHECKING:
    from graph.changeset import Entry
    from graph.claims import ClaimReads
    from graph.nodes.lazy import LazyCollection
    from graph.nodes.node import Node
    from graph.resources.instance_reads import InstanceReads


@dataclass(eq=False, slots=True)
class ResourceInstance:
    id: int
    resource: str
    params: Any
    canonical_params: bytes
    output: Node
    # What the instance holds a reference to, in the order it got them (the nodes include
    # shared ones it reused: releasing the instance releases its reference to them).
    nodes: tuple[Node, ...] = ()
    lazies: tuple[LazyCollection, ...] = ()
    refs: int = 1
    #: What `instantiate` read of the shared collections (None when it read nothing): a change
    #: there rebuilds the instance.
    reads: InstanceReads | None = None
    #: The claims of the request that built it (None: auth off); a rebuild runs with them.
    claims: Mapping[str, Any] | None = None
    #: What its build read of those claims (graph/claims.py): requests whose claims give the
    #: same values share it; () when it read none, and it is shared by every request.
    claim_reads: ClaimReads = ()
    #: Whether requests with other claims than `claims` share it (graph/resources/registry.py).
    mixed: bool = False

    def entries(self) -> list[Entry]:
        """The whole content in key order."""
        node = self.output
        return [(unkey(k), list(node.get(k) or ())) for k in node.ordered_keys()]

    def lookup(self, key: Any) -> list[Any]:
        return list(self.output.get(hkey(key)) or ())

    def __len__(self) -> int:
        return len(self.output)
