"""Synthetic services shared by the benchmarks (and by the smoke test in tests/bench)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graph import Context, EagerCollection, Mapper, Resource, Service, Sum, Values

GROUPS = 1000


class ByGroup(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for v in values:
            yield v["g"], v["v"]


class Ranked(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        total = values.get_unique()
        yield [-total, key], {"group": key, "total": total}


class Top(Resource):
    def __init__(self, params: Any) -> None:
        self.limit = int(params.get("limit", 10)) if isinstance(params, dict) else 10

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["ranked"].take(self.limit)


class PassThrough(Mapper):
    """1:1, re-using the value objects: a second materialised collection costs only the
    engine's own structures."""

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for v in values:
            yield key, v


def chain_service(keys: int) -> Service:
    """input -> map (1:1) -> take(10): two collections of `keys` keys each."""

    def create(
        inputs: Mapping[str, EagerCollection], context: Context
    ) -> dict[str, EagerCollection]:
        return {"ranked": inputs["events"].map(PassThrough)}

    return Service(
        name="chain",
        inputs={"events": [wide_entry(i) for i in range(keys)]},
        resources={"top": Top},
        create_graph=create,
    )


def create_wide_graph(
    inputs: Mapping[str, EagerCollection], context: Context
) -> dict[str, EagerCollection]:
    totals = inputs["events"].map(ByGroup).reduce(Sum)
    return {"ranked": totals.map(Ranked)}


def wide_entry(i: int, value: int | None = None) -> tuple[int, list[dict[str, int]]]:
    return i, [{"g": i % GROUPS, "v": i if value is None else value}]


def wide_service(keys: int) -> Service:
    """map -> reduce -> map -> take(10) over `keys` input keys (the issue's 1M-key graph)."""
    return Service(
        name="wide",
        inputs={"events": [wide_entry(i) for i in range(keys)]},
        resources={"top": Top},
        create_graph=create_wide_graph,
    )


class Probe(Resource):
    """One key of the `items` collection: a resource whose update marks a delta's arrival."""

    def __init__(self, params: Any) -> None:
        self.key = params["key"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["items"].slice(self.key, self.key)


class Window(Resource):
    """The first `limit` items, for one viewer: many viewers of one window are distinct
    instances over identical take(limit) collections."""

    def __init__(self, params: Any) -> None:
        self.limit = int(params["limit"])

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["items"].take(self.limit)


def item_value(i: int) -> dict[str, Any]:
    """About 100 bytes of JSON."""
    return {"id": i, "name": f"item-{i:08d}", "tags": ["alpha", "beta"], "pad": "x" * 40}


def items_service(keys: int) -> Service:
    """`keys` items shared as they are: the replication benchmarks' state."""

    def create(
        inputs: Mapping[str, EagerCollection], context: Context
    ) -> dict[str, EagerCollection]:
        return {"items": inputs["items"]}

    return Service(
        name="bench-items",
        inputs={"items": [(i, [item_value(i)]) for i in range(keys)]},
        resources={"probe": Probe, "window": Window},
        create_graph=create,
    )


def _bench_keys() -> int:
    import os

    return int(os.environ.get("SKIFF_BENCH_KEYS", "100000"))


def __getattr__(name: str) -> Any:
    # `skiff serve bench.workloads:wide` builds the graph only when asked for (size from
    # SKIFF_BENCH_KEYS), so importing this module stays cheap.
    if name == "wide":
        return wide_service(_bench_keys())
    if name == "items":
        return items_service(_bench_keys())
    raise AttributeError(name)
