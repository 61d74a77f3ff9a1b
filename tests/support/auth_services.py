"""A service for the auth tests: documents owned by users, resources built from the caller.

inputs:    docs  doc id -> [{"owner": user, "text": str}]
           notes note id -> [str]              (writable by a token scoped to it)
resources: public  {}          every document (public = True: no token needed)
           mine    {}          the caller's documents, from the token's `sub` (not from params)
           doc     {"id": id}  one document; 403 unless the caller owns it
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graph import Context, EagerCollection, ForbiddenError, Mapper, Resource, Service, Values


class OwnedBy(Mapper):
    def __init__(self, user: Any) -> None:
        self.user = user

    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for doc in values:
            if doc.get("owner") == self.user:
                yield key, doc["text"]


class Public(Resource):
    public = True

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].take(1000)


class Mine(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["docs"].map(OwnedBy, context.claims.get("sub"))


class Doc(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if not isinstance(params, dict) or not isinstance(params.get("id"), str):
            raise ValueError('params must be {"id": "..."}')
        self.id = params["id"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        doc = collections["docs"].get_unique(self.id, default=None)
        if doc is None or doc.get("owner") != context.claims.get("sub"):
            raise ForbiddenError(f"document {self.id!r} is not yours")
        return collections["docs"].slice(self.id, self.id)


def create_graph(
    inputs: Mapping[str, EagerCollection], context: Context
) -> dict[str, EagerCollection]:
    return {"docs": inputs["docs"], "notes": inputs["notes"]}


def make_auth_service() -> Service:
    return Service(
        name="docs",
        inputs={
            "docs": [
                ("d1", [{"owner": "alice", "text": "alice's first"}]),
                ("d2", [{"owner": "bob", "text": "bob's"}]),
                ("d3", [{"owner": "alice", "text": "alice's second"}]),
            ],
            "notes": [],
        },
        resources={"public": Public, "mine": Mine, "doc": Doc},
        create_graph=create_graph,
    )


service = make_auth_service()
