"""External services: live data from outside the graph (Skip's `ExternalService`).

A service names its external services (`Service(external_services={"name": service})`);
`context.use_external_resource(service, identifier, params)`, in `create_graph` or in
`Resource.instantiate`, returns an eager collection fed by one subscription of that service.
Identical (service, identifier, params) share one collection and one subscription, counted by
its users and closed when the last one goes.

The engine does no I/O: it keeps the collections (`ExternalCollection`) and tells a listener
when one is opened or closed; the node around it (broker/external/) subscribes, and turns each
update into a tick. An external collection made by `create_graph` is *shared*: part of the
service's state (on a cluster, its updates are writes of the leader, replicated and logged like
inputs); one made by a resource is the instance's own (*local*: updated on the node hosting
the instance, without moving the replicated version).

`ExternalService` is the interface adapters implement (the same as Skip's, in Python):
`subscribe` starts delivering a resource's content through the callbacks (`update(entries,
is_init)`: with `is_init` the entries are the whole content, otherwise the keys they name
change; `error(reason)`: a failure that did not stop the subscription; `loading()`: fresh
content is on its way) and returns once the subscription is established — the first content
delivered or on its way; raising fails the users of the resource. `unsubscribe` stops one
subscription; `shutdown` all of them.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from graph.nodes.node import StoredNode

if TYPE_CHECKING:
    from graph.host import Host

Json = Any
Entry = tuple[Json, list[Json]]
Scope = Literal["shared", "local"]


class ExternalCallbacks(Protocol):
    def update(self, entries: Sequence[Entry], is_init: bool) -> None:
        """New content: the whole of it (`is_init`), or the keys named (`[]`: deleted)."""

    def error(self, reason: object) -> None:
        """A failure the subscription survives (the last content stays)."""

    def loading(self) -> None:
        """Fresh content is being fetched."""


class ExternalService(ABC):
    """Base class of adapters (broker/external/ has PostgreSQL, Kafka, polled HTTP and Skip
    ones). An adapter missing `subscribe` or `unsubscribe` fails when it is created, not when
    a resource first uses it."""

    @abstractmethod
    async def subscribe(
        self, instance: str, resource: str, params: Json, callbacks: ExternalCallbacks
    ) -> None:
        """Start delivering `resource` with `params` under the name `instance`."""

    @abstractmethod
    def unsubscribe(self, instance: str) -> None:
        """Stop the subscription named `instance` (nothing is delivered for it afterwards)."""

    async def shutdown(self) -> None:  # noqa: B027 - optional: adapters without resources of their own
        """Stop every subscription."""


class ExternalListener(Protocol):
    """What hears of external collections coming and going (broker/external/feeds.py)."""

    def opened(self, collection: ExternalCollection) -> None: ...

    def closed(self, collection: ExternalCollection) -> None: ...


def external_name(service: str, identifier: str, canonical_params: bytes) -> str:
    """The name of a subscription: `<service>/<identifier>/<digest of the params>`. It names the
    subscription to its adapter (Skip's `instance`) and, for a shared one, the collection in
    the leader's input log and snapshots."""
    digest = hashlib.blake2b(canonical_params, digest_size=8).hexdigest()
    return f"{service}/{identifier}/{digest}"


class ExternalCollection(StoredNode):
    """An eager collection fed by one subscription of an external service."""

    __slots__ = ("identifier", "name", "params", "refs", "scope", "service")

    def __init__(
        self,
        engine: Host,
        *,
        service: str,
        identifier: str,
        params: Json,
        name: str,
        scope: Scope,
    ) -> None:
        super().__init__(engine, f"external {name}")
        self.service = service
        self.identifier = identifier
        self.params = params
        self.name = name
        self.scope: Scope = scope
        self.refs = 1

    def detach(self) -> None:
        self.refs -= 1
        if self.refs <= 0:
            self.engine.external_closed(self)
