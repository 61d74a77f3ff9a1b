"""A small service for the broker's tests: map + reduce + take, and resources with params.

inputs:  posts  post id (int) -> [{"title": str, "author": str}]
         votes  vote id (str) -> [{"post": int, "user": str}]  ({"explode": true} makes the
                                   mapper raise: a write that trips user code)
shared:  scores post id -> [number of votes]
         posts  (the input itself)
resources:
         top        {"limit": n}     the first n scores in key order (take); rejects a bad limit
         by_author  {"author": name} the titles of that author's posts (map with an argument)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graph import (
    Context,
    Count,
    EagerCollection,
    Mapper,
    Resource,
    Service,
    Values,
)


class VotesByPost(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for vote in values:
            if vote.get("explode"):
                raise ValueError(f"vote {key} exploded")
            yield vote["post"], vote["user"]


class TitlesOf(Mapper):
    def __init__(self, author: str) -> None:
        self.author = author

    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for post in values:
            if post.get("author") == self.author:
                yield key, post["title"]


class Top(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        limit = params.get("limit", 10) if isinstance(params, dict) else None
        if type(limit) is not int or limit < 0:
            raise ValueError("limit must be a non-negative integer")
        self.limit = limit

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["scores"].take(self.limit)


class ByAuthor(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if not isinstance(params, dict) or not isinstance(params.get("author"), str):
            raise ValueError('params must be {"author": name}')
        self.author = params["author"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["posts"].map(TitlesOf, self.author)


def create_graph(
    inputs: Mapping[str, EagerCollection], context: Context
) -> dict[str, EagerCollection]:
    return {"scores": inputs["votes"].map(VotesByPost).reduce(Count), "posts": inputs["posts"]}


def make_service() -> Service:
    return Service(
        inputs={
            "posts": [
                (1, [{"title": "hello", "author": "ann"}]),
                (2, [{"title": "world", "author": "bob"}]),
                (3, [{"title": "again", "author": "ann"}]),
            ],
            "votes": [("v1", [{"post": 1, "user": "bob"}]), ("v2", [{"post": 2, "user": "ann"}])],
        },
        resources={"top": Top, "by_author": ByAuthor},
        create_graph=create_graph,
        name="test-service",
    )


service = make_service()
