"""The service the multi-process cluster tests run: votes counted per post, ranked."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from graph import Context, Count, EagerCollection, Mapper, Resource, Service, Values


class VotesByPost(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for vote in values:
            yield vote["post"], key


class Ranked(Mapper):
    def __init__(self, counts: EagerCollection) -> None:
        self.counts = counts

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        votes = self.counts.get_unique(key, default=0)
        yield [-votes, key], {"post": key, "title": values.get_unique()["title"], "votes": votes}


class Top(Resource):
    def __init__(self, params: Any) -> None:
        limit = params.get("limit", 10) if isinstance(params, dict) else None
        if type(limit) is not int or limit < 0:
            raise ValueError("limit must be a non-negative integer")
        self.limit = limit

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["ranked"].take(self.limit)


class Post(Resource):
    def __init__(self, params: Any) -> None:
        if not isinstance(params, dict) or "post" not in params:
            raise ValueError('params must be {"post": id}')
        self.post = params["post"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["counts"].slice(self.post, self.post)


def create_graph(
    inputs: Mapping[str, EagerCollection], context: Context
) -> dict[str, EagerCollection]:
    counts = inputs["votes"].map(VotesByPost).reduce(Count)
    return {"ranked": inputs["posts"].map(Ranked, counts), "counts": counts}


service = Service(
    name="cluster",
    inputs={"posts": [(p, [{"title": f"post {p}"}]) for p in range(20)], "votes": []},
    resources={"top": Top, "post": Post},
    create_graph=create_graph,
)

# The same service under other names, for several services on one Redis Cluster: their hash
# tags fall in the three shards of a fresh 3-primary Cluster (slots 865, 9053, 15419).
alpha = dataclasses.replace(service, name="alpha")
delta = dataclasses.replace(service, name="delta")
beta = dataclasses.replace(service, name="beta")
