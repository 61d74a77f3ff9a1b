"""A service reading external resources, for the tests of broker/external and its wiring.

`Shop` is an ExternalService the test drives in-process: its resources are dicts the test sets
(`shop.set("catalog", key, values)`), delivered to every live subscription of that resource —
the whole content first (`is_init`), then each change. Several nodes in one process each have
their own Shop (each shuts its own down) over one `ShopData`, as nodes share one real system.
`fail` names resources whose subscription raises; `hold` makes subscriptions wait until
`release()` before their first content. Adapters that talk to real systems (PostgreSQL, HTTP,
Skip) are tested on their own.

The service (`make_shop_service`):
  create_graph: "catalog"  the shop's catalog (a shared external collection), item -> [price]
  resources:    "catalog"  {} the catalog
                "stock"    {"store": s} the stock of one store (a local external collection,
                           one per store), item -> [count]; a count of "boom" makes its mapper
                           raise (an update user code cannot take)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from graph import Context, EagerCollection, Mapper, Resource, Service, Values
from graph.external import ExternalCallbacks, ExternalService


class ShopData:
    """The content of the shop, shared by the Shop of every node."""

    def __init__(self) -> None:
        self.content: dict[str, dict[Any, list[Any]]] = {}
        self.shops: list[Shop] = []

    def set(self, resource: str, key: Any, values: list[Any], params: Any = None) -> None:
        name = _key(resource, params)
        self.content.setdefault(name, {})[key] = values
        if not values:
            del self.content[name][key]
        for shop in self.shops:
            shop.deliver(name, key, values)


class Shop(ExternalService):
    def __init__(self, data: ShopData | None = None) -> None:
        self.data = data or ShopData()
        self.data.shops.append(self)
        self.live: dict[str, tuple[str, Any, ExternalCallbacks]] = {}
        self.subscribed: list[tuple[str, Any]] = []
        self.unsubscribed: list[str] = []
        self.fail: set[str] = set()
        self.shut_down = 0
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def subscribe(
        self, instance: str, resource: str, params: Any, callbacks: ExternalCallbacks
    ) -> None:
        self.subscribed.append((resource, params))
        if resource in self.fail:
            raise ConnectionError(f"the shop has no {resource} today")
        if self._gate is not None:
            await self._gate.wait()
        self.live[instance] = (resource, params, callbacks)
        content = self.data.content.get(_key(resource, params), {})
        callbacks.update(sorted(content.items()), True)

    def unsubscribe(self, instance: str) -> None:
        self.unsubscribed.append(instance)
        self.live.pop(instance, None)

    async def shutdown(self) -> None:
        self.shut_down += 1
        self.live.clear()

    def set(self, resource: str, key: Any, values: list[Any], params: Any = None) -> None:
        """Change one key of a resource (for `stock`, `params` names the store)."""
        self.data.set(resource, key, values, params)

    def deliver(self, name: str, key: Any, values: list[Any]) -> None:
        for live_resource, live_params, callbacks in list(self.live.values()):
            if _key(live_resource, live_params) == name:
                callbacks.update([(key, values)], False)

    def live_count(self, resource: str) -> int:
        return sum(1 for r, _, _ in self.live.values() if r == resource)


def _key(resource: str, params: Any) -> str:
    if isinstance(params, dict) and "store" in params:
        return f"{resource}:{params['store']}"
    return resource


class Counted(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for count in values:
            if count == "boom":
                raise ValueError(f"item {key}: the count is not a number")
            yield key, count


class Catalog(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["catalog"]


class Stock(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if not isinstance(params, dict) or not isinstance(params.get("store"), str):
            raise ValueError('params must be {"store": name}')

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        stock = context.use_external_resource("shop", "stock", {"store": self.params["store"]})
        return stock.map(Counted)


def make_shop_service(shop: Shop, name: str = "shop") -> Service:
    def create_graph(
        inputs: Mapping[str, EagerCollection], context: Context
    ) -> dict[str, EagerCollection]:
        return {"catalog": context.use_external_resource("shop", "catalog", {})}

    return Service(
        name=name,
        inputs={"orders": []},
        resources={"catalog": Catalog, "stock": Stock},
        create_graph=create_graph,
        external_services={"shop": shop},
    )
