"""External collections in the engine: opened by create_graph (shared) or by a resource
(local), shared per (service, identifier, params), counted, closed with their last user;
written by the engine's own ticks (shared: versioned; local: the version does not move)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from graph import (
    Context,
    EagerCollection,
    Engine,
    GraphError,
    InvalidWriteError,
    Resource,
    Service,
    UnknownCollectionError,
)
from graph.external import ExternalCollection, ExternalService


class Unused(ExternalService):
    """An external service the engine is never meant to call in these tests (the node's feeds
    subscribe; the engine only opens collections)."""

    async def subscribe(self, instance: str, resource: str, params: Any, callbacks: Any) -> None:
        raise AssertionError("the engine does not subscribe")

    def unsubscribe(self, instance: str) -> None:
        raise AssertionError("the engine does not unsubscribe")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def opened(self, collection: ExternalCollection) -> None:
        self.events.append(("opened", collection.name, collection.scope))

    def closed(self, collection: ExternalCollection) -> None:
        self.events.append(("closed", collection.name, collection.scope))


class Feed(Resource):
    """params: {"table": name}: the external "db" resource `name`, unchanged."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return context.use_external_resource("db", self.params["table"], {"key": "id"})


def create(inputs: Mapping[str, EagerCollection], context: Context) -> dict[str, Any]:
    return {"users": context.use_external_resource("db", "users", {"key": "id"})}


SERVICE = Service(
    inputs={"notes": []},
    resources={"feed": Feed},
    create_graph=create,
    external_services={"db": Unused()},
)


def build(recorder: Recorder, state: Any = None) -> Engine:
    return Engine.for_service(SERVICE, state, listener=recorder)


def test_a_shared_collection_is_written_like_an_input() -> None:
    recorder = Recorder()
    engine = build(recorder)
    (name,) = engine.externals.names("shared")
    assert recorder.events == [("opened", name, "shared")]
    assert name.startswith("db/users/")
    assert name in engine.durable_names and "notes" in engine.durable_names
    result = engine.apply({name: [(1, [{"name": "ann"}])]})
    assert result.version == 1
    assert result.shared.changes["users"] == ((1, [{"name": "ann"}]),)
    # Clients cannot write it: only the service's inputs are theirs.
    with pytest.raises(UnknownCollectionError):
        engine.validate({name: [(2, [{}])]})


def test_a_resource_opens_a_local_collection_shared_by_identical_requests() -> None:
    recorder = Recorder()
    engine = build(recorder)
    first = engine.instantiate("feed", {"table": "posts"})
    second = engine.instantiate("feed", {"table": "posts"})
    assert second is first
    other = engine.instantiate("feed", {"table": "comments"})
    opened = [e for e in recorder.events if e[0] == "opened"]
    assert [scope for _, _, scope in opened] == ["shared", "local", "local"]
    (posts,) = [n for _, n, _ in opened if n.startswith("db/posts/")]
    result = engine.apply_local({posts: [(1, ["hello"])]})
    assert result.version == engine.version == 0
    assert result.instances == {first.id: [(1, ["hello"])]}
    assert result.shared.is_empty()
    # A local collection is not the service's to write with a version.
    with pytest.raises(UnknownCollectionError):
        engine.apply({posts: [(2, ["x"])]})
    engine.release(first)
    engine.release(second)
    assert recorder.events[-1] == ("closed", posts, "local")
    engine.release(other)
    assert [e[0] for e in recorder.events].count("closed") == 2


def test_a_resource_reusing_a_shared_collection_does_not_close_it() -> None:
    recorder = Recorder()
    engine = build(recorder)
    inst = engine.instantiate("feed", {"table": "users"})
    engine.release(inst)
    assert all(e[0] == "opened" for e in recorder.events)


def test_an_init_update_replaces_the_whole_content() -> None:
    engine = build(Recorder())
    (name,) = engine.externals.names("shared")
    engine.apply({name: [(1, ["a"]), (2, ["b"])]})
    batch = engine.externals.update_entries(name, [(2, ["B"]), (3, ["c"])], is_init=True)
    assert sorted(batch, key=repr) == sorted([(2, ["B"]), (3, ["c"]), (1, [])], key=repr)
    engine.apply({name: batch})
    assert engine.collection_entries("users") == [(2, ["B"]), (3, ["c"])]
    partial = engine.externals.update_entries(name, [(3, [])], is_init=False)
    assert partial == [(3, [])]


def test_a_rebuilt_leader_starts_from_the_content_it_held() -> None:
    engine = build(Recorder())
    (name,) = engine.externals.names("shared")
    rebuilt = Engine.for_service(SERVICE, {name: [(7, ["kept"])]})
    assert rebuilt.collection_entries("users") == [(7, ["kept"])]


def test_mistakes_are_graph_errors() -> None:
    class Bad(Resource):
        def instantiate(
            self, collections: Mapping[str, EagerCollection], context: Context
        ) -> EagerCollection:
            return context.use_external_resource(*self.params)

    service = Service(inputs={}, resources={"bad": Bad}, external_services={"db": Unused()})
    engine = Engine.for_service(service)
    for params in (["nope", "t"], ["db", ""], ["db", "t", {"x": float("nan")}]):
        with pytest.raises(GraphError):
            engine.instantiate("bad", params)
    assert engine.externals.by_name == {}


def test_a_local_tick_needs_local_collections_only() -> None:
    engine = build(Recorder())
    with pytest.raises((UnknownCollectionError, InvalidWriteError)):
        engine.apply_local({"notes": [(1, ["x"])]})
