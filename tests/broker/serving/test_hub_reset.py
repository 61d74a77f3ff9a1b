"""Hub.reset_run: a new run (replication epoch) re-inits every connected reader in place."""

from __future__ import annotations

from typing import Any

import pytest

from broker import Hub
from broker.client import Init, Update
from graph import Engine, Service
from tests.broker.conftest import RUN, HubFactory
from tests.support.helpers import decode_chunk, vote
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(10)


def take_event(reader: Any) -> Any:
    chunk = reader.take()
    assert chunk is not None
    return decode_chunk(chunk)


def mirror(state: dict[str, list[Any]], version: int, service: Service | None = None) -> Engine:
    engine = Engine.mirror(service or make_service(), list(state))
    engine.replace_all(state, version)
    return engine


async def test_same_engine_readers_get_an_init_under_the_new_run(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader = hub.subscribe(stream)
    take_event(reader)
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    hub.apply({"votes": [("v4", vote(2, "cy"))]})  # two updates pending, never taken
    hub.reset_run("run2")
    assert hub.run == "run2"
    assert take_event(reader) == Init("run2", 2, [(1, [2]), (2, [2])])
    assert reader.take() is None and not reader.closed
    hub.apply({"votes": [("v5", vote(1, "dee"))]})
    assert take_event(reader) == Update("run2", 3, [(1, [3])])


async def test_resume_across_runs_is_an_init_and_history_restarts(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    hub.reset_run("run2")
    # A version of the old run means nothing now, even a small one still "in history".
    assert take_event(hub.subscribe(stream, f"{RUN}/0")) == Init("run2", 1, [(1, [2]), (2, [1])])
    hub.apply({"votes": [("v4", vote(2, "cy"))]})
    assert take_event(hub.subscribe(stream, "run2/1")) == Update("run2", 2, [(2, [2])])
    # History starts at the reset: nothing from before it is replayed.
    assert isinstance(take_event(hub.subscribe(stream, "run2/0")), Init)


async def test_a_new_engine_takes_over_the_instances_and_their_streams(
    make_hub: HubFactory,
) -> None:
    hub = Hub(mirror({"scores": [(1, [5])], "posts": []}, 7), run="e1", config=make_hub().config)
    try:
        top = hub.create_stream("top", {"limit": 5})
        idle = hub.create_stream("by_author", {"author": "ann"})
        reader = hub.subscribe(top)
        assert take_event(reader) == Init("e1", 7, [(1, [5])])
        # The new epoch restarts at a lower version: only a new engine can go there.
        fresh = mirror({"scores": [(2, [1])], "posts": [(4, [{"title": "t", "author": "ann"}])]}, 3)
        hub.reset_run("e2", fresh)
        assert hub.engine is fresh
        assert take_event(reader) == Init("e2", 3, [(2, [1])])
        assert hub.instance_count == 2 and fresh.instance_count == 2
        # A stream without a reader kept its id and sees the new state.
        assert take_event(hub.subscribe(idle)) == Init("e2", 3, [(4, ["t"])])
        hub.publish(fresh.apply({"scores": [(2, [2])]}, version=4))
        assert take_event(reader) == Update("e2", 4, [(2, [2])])
        hub.delete_stream(top)
        assert hub.stream_count == 1
    finally:
        hub.close()


async def test_an_instance_the_new_engine_rejects_is_dropped(make_hub: HubFactory) -> None:
    hub = Hub(mirror({"scores": [(1, [5])], "posts": []}, 1), run="e1", config=make_hub().config)
    try:
        top = hub.create_stream("top", {"limit": 5})
        ann = hub.create_stream("by_author", {"author": "ann"})
        reader = hub.subscribe(top)
        take_event(reader)
        # The new epoch no longer shares `scores`: `top` cannot be built on it.
        hub.reset_run("e2", mirror({"posts": []}, 1))
        assert reader.close_reason == "reset"
        assert not hub.has_stream(top) and hub.has_stream(ann)
        assert hub.instance_count == 1
    finally:
        hub.close()
