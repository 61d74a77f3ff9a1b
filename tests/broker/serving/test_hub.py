"""Hub: shared instances, fan-out of encoded-once updates, resume, idle release, slow readers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import DrainingError, Hub, ServeConfig, UnknownStreamError
from broker.client import Init, Update
from broker.serving import reads
from graph import Engine, UnknownResourceError, UserCodeError
from tests.broker.conftest import RUN, HubFactory
from tests.support.helpers import apply_update, decode_chunk, vote
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(10)


def first_event(hub: Hub, stream_id: str, last_event_id: str | None = None) -> Any:
    reader = hub.subscribe(stream_id, last_event_id)
    chunk = reader.take()
    assert chunk is not None
    return reader, decode_chunk(chunk)


async def test_identical_resource_and_params_share_one_instance(hub: Hub) -> None:
    a = hub.create_stream("top", {"limit": 2, "x": [1, {"b": 1, "a": 2}]})
    b = hub.create_stream("top", {"x": [1, {"a": 2, "b": 1}], "limit": 2})
    c = hub.create_stream("top", {"limit": 3})
    assert len({a, b, c}) == 3
    assert hub.stream_count == 3
    assert hub.instance_count == 2
    # The hub holds one engine reference per instance, whatever the number of streams.
    assert hub.engine.instance_count == 2
    assert all(inst.refs == 1 for inst in hub.engine.instances())


async def test_init_is_the_whole_resource_at_the_current_version(hub: Hub) -> None:
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    stream = hub.create_stream("top", {"limit": 5})
    _, event = first_event(hub, stream)
    assert event == Init(run=RUN, version=1, entries=[(1, [2]), (2, [1])])


async def test_unknown_resource_and_rejected_params_create_nothing(hub: Hub) -> None:
    with pytest.raises(UnknownResourceError):
        hub.create_stream("nope", {})
    with pytest.raises(Exception, match="limit must be"):
        hub.create_stream("top", {"limit": -1})
    assert (hub.stream_count, hub.instance_count, hub.engine.instance_count) == (0, 0, 0)


async def test_each_update_is_encoded_once_and_shared(hub: Hub) -> None:
    s1 = hub.create_stream("top", {"limit": 5})
    s2 = hub.create_stream("top", {"limit": 5})
    r1, _ = first_event(hub, s1)
    r2, _ = first_event(hub, s2)
    hub.apply({"votes": [("v3", vote(2, "cy"))]})
    c1, c2 = r1.take(), r2.take()
    assert c1 is not None and c1 is c2
    assert decode_chunk(c1) == Update(run=RUN, version=1, entries=[(2, [2])])


async def test_readers_at_one_version_share_the_encoded_init(hub: Hub) -> None:
    s1 = hub.create_stream("top", {"limit": 5})
    s2 = hub.create_stream("top", {"limit": 5})
    assert hub.subscribe(s1).take() is hub.subscribe(s2).take()


async def test_only_changed_instances_are_notified(hub: Hub) -> None:
    top = hub.create_stream("top", {"limit": 5})
    ann = hub.create_stream("by_author", {"author": "ann"})
    r_top, _ = first_event(hub, top)
    r_ann, _ = first_event(hub, ann)
    hub.apply({"posts": [(4, [{"title": "new", "author": "ann"}])]})
    assert r_top.take() is None
    assert decode_chunk(r_ann.take() or b"") == Update(run=RUN, version=1, entries=[(4, ["new"])])


async def test_a_failed_write_notifies_nobody(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader, _ = first_event(hub, stream)
    with pytest.raises(UserCodeError):
        hub.apply({"votes": [("v9", [{"post": 1, "user": "x", "explode": True}])]})
    assert hub.engine.version == 0
    assert reader.take() is None


async def test_unknown_stream(hub: Hub) -> None:
    with pytest.raises(UnknownStreamError):
        hub.subscribe("nope")
    with pytest.raises(UnknownStreamError):
        hub.delete_stream("nope")
    assert not hub.disconnect("nope")


async def test_delete_ends_the_reader_and_forgets_the_id(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader, _ = first_event(hub, stream)
    hub.delete_stream(stream)
    assert reader.close_reason == "deleted"
    assert not hub.has_stream(stream)
    with pytest.raises(UnknownStreamError):
        hub.subscribe(stream)


async def test_a_second_reader_replaces_the_first(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    old, _ = first_event(hub, stream)
    new, _ = first_event(hub, stream)
    assert old.close_reason == "replaced"
    assert not new.closed
    assert hub.reader_count == 1
    # The old connection ending later must not detach the new reader.
    hub.unsubscribe(old)
    assert hub.reader_count == 1


# -- resume ------------------------------------------------------------------------------------
async def test_resume_sends_exactly_what_changed_since(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader, init = first_event(hub, stream)
    hub.unsubscribe(reader)
    hub.apply({"votes": [("v3", vote(1, "cy"))]})  # 1 -> 2 votes
    hub.apply({"votes": [("v4", vote(3, "cy"))]})  # post 3 appears
    hub.apply({"votes": [("v3", [])]})  # 1 -> 1 vote
    hub.apply({"posts": [(9, [{"title": "t", "author": "a"}])]})  # not in this resource
    _, event = first_event(hub, stream, f"{RUN}/{init.version}")
    assert event == Update(run=RUN, version=4, entries=[(1, [1]), (3, [1])])
    _, event = first_event(hub, stream, f"{RUN}/2")
    assert event == Update(run=RUN, version=4, entries=[(1, [1])])


async def test_resume_at_the_current_version_is_an_empty_update(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    _, event = first_event(hub, stream, f"{RUN}/1")
    assert event == Update(run=RUN, version=1, entries=[])


@pytest.mark.parametrize(
    "last_event_id",
    ["other/1", f"{RUN}/99", f"{RUN}/x", "garbage", "", f"{RUN}/-1"],
)
async def test_resume_falls_back_to_init(hub: Hub, last_event_id: str) -> None:
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    stream = hub.create_stream("top", {"limit": 5})
    hub.apply({"votes": [("v4", vote(1, "dee"))]})
    _, event = first_event(hub, stream, last_event_id)
    assert event == Init(run=RUN, version=2, entries=[(1, [3]), (2, [1])])


async def test_resume_from_before_the_instance_existed_is_an_init(hub: Hub) -> None:
    hub.apply({"votes": [("v3", vote(1, "cy"))]})
    stream = hub.create_stream("top", {"limit": 5})  # created at version 1
    _, event = first_event(hub, stream, f"{RUN}/0")
    assert isinstance(event, Init)


async def test_resume_beyond_the_history_is_an_init(make_hub: HubFactory) -> None:
    hub = make_hub(history_versions=2)
    stream = hub.create_stream("top", {"limit": 5})
    for i in range(4):
        hub.apply({"votes": [(f"w{i}", vote(1, f"u{i}"))]})
    for since in (0, 1):
        _, event = first_event(hub, stream, f"{RUN}/{since}")
        assert isinstance(event, Init)
    _, event = first_event(hub, stream, f"{RUN}/2")
    assert event == Update(run=RUN, version=4, entries=[(1, [5])])


writes = st.lists(
    st.tuples(
        st.sampled_from(["v1", "v2", "v3", "v4", "v5", "v6"]),
        st.one_of(st.just([]), st.builds(vote, st.integers(1, 5), st.just("u"))),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(writes, max_size=4),
    after=st.lists(writes, max_size=8),
    history=st.integers(0, 6),
    limit=st.integers(0, 4),
)
async def test_resume_plus_old_state_is_the_current_state(
    before: list[Any], after: list[Any], history: int, limit: int
) -> None:
    hub = Hub(
        Engine.for_service(make_service()),
        run=RUN,
        config=ServeConfig(history_versions=history),
    )
    try:
        stream = hub.create_stream("top", {"limit": limit})
        for batch in before:
            hub.apply({"votes": batch})
        reader, seen = first_event(hub, stream)
        hub.unsubscribe(reader)
        # Only the ticks that changed the instance are in its history.
        results = [hub.apply({"votes": batch}) for batch in after]
        changed = [result.instances for result in results if result.instances]
        touched = {key for instances in changed for e in instances.values() for key, _ in e}
        _, event = first_event(hub, stream, f"{RUN}/{seen.version}")
        current = dict(await reads.snapshot(hub, "top", {"limit": limit}))
        if isinstance(event, Update):
            assert len(changed) <= history
            assert apply_update(dict(seen.entries), event.entries) == current
            # Only keys some tick touched since; one changed and changed back is still sent,
            # with its complete values (the history keeps new values, not old ones).
            assert {key for key, _ in event.entries} <= touched
        else:
            assert len(changed) > history
            assert dict(event.entries) == current
        assert event.version == hub.engine.version
    finally:
        hub.close()


# -- idle release ------------------------------------------------------------------------------
async def test_an_unread_stream_expires_with_its_instance(make_hub: HubFactory) -> None:
    hub = make_hub(idle_instance_s=0.05)
    stream = hub.create_stream("top", {"limit": 5})
    await asyncio.sleep(0.02)
    assert hub.has_stream(stream)
    await asyncio.sleep(0.1)
    assert not hub.has_stream(stream)
    assert (hub.instance_count, hub.engine.instance_count) == (0, 0)


async def test_a_connected_reader_keeps_the_instance(make_hub: HubFactory) -> None:
    hub = make_hub(idle_instance_s=0.05)
    stream = hub.create_stream("top", {"limit": 5})
    reader, _ = first_event(hub, stream)
    await asyncio.sleep(0.1)
    assert hub.has_stream(stream)
    hub.unsubscribe(reader)
    # A reader that comes back within the delay finds its stream.
    await asyncio.sleep(0.02)
    first_event(hub, stream)
    await asyncio.sleep(0.1)
    assert hub.has_stream(stream)


async def test_deleting_the_last_stream_releases_after_the_delay(make_hub: HubFactory) -> None:
    hub = make_hub(idle_instance_s=0.05)
    stream = hub.create_stream("top", {"limit": 5})
    first_event(hub, stream)
    hub.delete_stream(stream)
    assert hub.engine.instance_count == 1
    # A new stream within the delay reuses the live instance.
    again = hub.create_stream("top", {"limit": 5})
    assert hub.instance_count == 1
    await asyncio.sleep(0.1)
    assert not hub.has_stream(again)
    assert hub.engine.instance_count == 0


async def test_creating_a_stream_restarts_the_idle_clock(make_hub: HubFactory) -> None:
    hub = make_hub(idle_instance_s=0.08)
    first = hub.create_stream("top", {"limit": 5})
    await asyncio.sleep(0.05)
    second = hub.create_stream("top", {"limit": 5})
    await asyncio.sleep(0.05)
    assert hub.has_stream(first) and hub.has_stream(second)
    await asyncio.sleep(0.1)
    assert not hub.has_stream(first) and not hub.has_stream(second)


# -- slow readers ------------------------------------------------------------------------------
async def test_a_slow_reader_gets_coalesced_then_disconnected_then_resumes(
    make_hub: HubFactory,
) -> None:
    hub = make_hub(max_pending_updates=2, max_lag_updates=4, history_versions=16)
    stream = hub.create_stream("top", {"limit": 5})
    fast_stream = hub.create_stream("top", {"limit": 5})
    slow, init = first_event(hub, stream)
    fast, _ = first_event(hub, fast_stream)
    for i in range(3):
        hub.apply({"votes": [(f"w{i}", vote(1 + i % 2, "u"))]})
        assert fast.take() is not None
    assert slow.coalescing
    assert not fast.coalescing
    for i in range(3, 5):
        hub.apply({"votes": [(f"w{i}", vote(3, "u"))]})
        assert fast.take() is not None
    assert slow.close_reason == "lagging"
    assert not fast.closed
    assert hub.reader_count == 1
    assert hub.has_stream(stream)
    _, event = first_event(hub, stream, f"{RUN}/{init.version}")
    expected = apply_update(dict(init.entries), event.entries)
    assert expected == dict(await reads.snapshot(hub, "top", {"limit": 5}))


# -- reads and shutdown ------------------------------------------------------------------------
async def test_snapshot_and_lookup_leave_no_instance(hub: Hub) -> None:
    assert await reads.snapshot(hub, "top", {"limit": 1}) == [(1, [1])]
    assert await reads.lookup(hub, "top", 2, {"limit": 5}) == [1]
    assert await reads.lookup(hub, "top", 42, {"limit": 5}) == []
    assert hub.engine.instance_count == 0
    stream = hub.create_stream("top", {"limit": 5})
    assert await reads.snapshot(hub, "top", {"limit": 5}) == [(1, [1]), (2, [1])]
    assert hub.engine.instances()[0].refs == 1
    assert hub.has_stream(stream)


async def test_drain_then_close(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader, _ = first_event(hub, stream)
    hub.drain()
    assert hub.draining
    assert reader.close_reason == "shutdown"
    with pytest.raises(DrainingError):
        hub.create_stream("top", {"limit": 5})
    with pytest.raises(DrainingError):
        hub.subscribe(stream)
    hub.close()
    assert (hub.instance_count, hub.stream_count, hub.engine.instance_count) == (0, 0, 0)


async def test_disconnect_keeps_the_stream(hub: Hub) -> None:
    stream = hub.create_stream("top", {"limit": 5})
    reader, _ = first_event(hub, stream)
    assert hub.disconnect(stream)
    assert reader.closed
    assert not hub.disconnect(stream)
    assert hub.has_stream(stream)


async def test_idle_readers_get_heartbeats_from_one_timer(make_hub: HubFactory) -> None:
    from broker.http.sse import HEARTBEAT

    hub = make_hub(heartbeat_s=0.1)
    idle = hub.subscribe(hub.create_stream("by_author", {"author": "nobody"}))
    busy = hub.subscribe(hub.create_stream("top", {"limit": 1}))
    assert idle.take() is not None and busy.take() is not None  # their inits
    beats = {"idle": 0, "busy": 0}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.6
    n = 0
    while loop.time() < deadline:
        n += 1
        hub.apply({"votes": [(f"b{n}", vote(1, f"u{n}"))]})  # changes `top`, not `by_author`
        for name, reader in (("idle", idle), ("busy", busy)):
            while (chunk := reader.take()) is not None:
                beats[name] += chunk == HEARTBEAT
        await asyncio.sleep(0.01)
    # Never silent for a whole heartbeat_s: one beat every 0.05 s finds `idle` quiet at least
    # every other time; `busy` sends an update every 10 ms and needs none.
    assert 5 <= beats["idle"] <= 13
    assert beats["busy"] == 0
    # The timer stops with the last reader.
    hub.unsubscribe(idle)
    hub.unsubscribe(busy)
    await asyncio.sleep(0.12)
    assert hub._beats._timer is None
