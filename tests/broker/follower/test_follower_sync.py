"""MirrorSync against real Redis, with the leader played by the test (ScriptedLeader)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from redis.asyncio import Redis

from broker import ServeConfig
from broker.client import Init, Update
from broker.follower.sync import MirrorSync
from broker.runtime.backoff import Backoff
from broker.store.keyspace import Keyspace
from graph import (
    Context,
    EagerCollection,
    GraphError,
    Mapper,
    Resource,
    Service,
    Values,
)
from tests.support.follower_support import (
    caught_up,
    events,
    reader_of,
    record_versions,
    running,
    until,
)
from tests.support.helpers import vote
from tests.support.scripted_leader import ScriptedLeader, leader_state, mirror_state

pytestmark = pytest.mark.timeout(30)


# -- bootstrap and tailing ---------------------------------------------------------------------
async def test_bootstrap_from_snapshot_then_stream(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    for n in range(5):
        await leader.write({"votes": [(f"a{n}", vote(n % 3, "ann"))]})
    await leader.take_snapshot()
    for n in range(3):
        await leader.write({"votes": [(f"b{n}", vote(2, "bob"))]})
    hub = await sync.bootstrap()
    # The snapshot first: version 5, the three entries after it still to read.
    assert (hub.run, hub.engine.version, sync.lag_versions) == (leader.epoch, 5, 3)
    await caught_up(sync, leader)
    assert sync.resyncs == 0 and sync.lag_versions == 0


async def test_bootstrap_of_a_fresh_epoch_at_version_zero(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    hub = await sync.bootstrap()
    assert hub.engine.version == 0
    # The initial state of the service's inputs, computed by the leader, is in the snapshot.
    assert mirror_state(hub.engine) == leader_state(leader)
    assert dict(mirror_state(hub.engine)["scores"]) == {1: [1], 2: [1]}


async def test_readers_get_every_update(leader: ScriptedLeader, sync: MirrorSync) -> None:
    hub = await sync.bootstrap()
    reader = reader_of(hub)
    assert events(reader) == [Init(leader.epoch, 0, [(1, [1]), (2, [1])])]
    v1 = await leader.write({"votes": [("x", vote(3, "cy"))]})
    v2 = await leader.write({"votes": [("x", [])]})
    await caught_up(sync, leader)
    assert events(reader) == [
        Update(leader.epoch, v1, [(3, [1])]),
        Update(leader.epoch, v2, [(3, [])]),
    ]


async def test_waits_for_a_leader_to_initialise_the_keyspace(
    redis_client: Redis, keyspace: Keyspace, service: Service, sync: MirrorSync
) -> None:
    await sync.step()
    assert (sync.state, sync.hub) == ("waiting", None)
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.start_epoch()
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await sync.bootstrap()
    await caught_up(sync, leader)


async def test_join_under_load_applies_every_version_once(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    async def load() -> None:
        for n in range(400):
            await leader.write({"votes": [(f"v{n % 37}", vote(n % 11, f"u{n}"))]})
            if n % 60 == 59:
                # Trims up to the previous snapshot: a follower slightly behind needs no resync.
                await leader.take_snapshot()
            await asyncio.sleep(0)

    writer = asyncio.create_task(load())
    # Join mid-way: after a snapshot, with writes going on.
    await until(lambda: leader.snapshot > 0)
    hub = await sync.bootstrap()
    start = hub.engine.version
    seen = record_versions(hub)
    async with running(sync):
        await writer
        await until(lambda: sync.applied == leader.version and sync.state == "tailing")
    assert start > 0
    assert sync.resyncs == 0
    assert seen == list(range(start + 1, leader.version + 1))
    assert mirror_state(hub.engine) == leader_state(leader)


class Fragile(Resource):
    """Titles of every post; its mapper raises on a post titled "boom"."""

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["posts"].map(FragileTitles)


class FragileTitles(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for post in values:
            if post["title"] == "boom":
                raise ValueError("boom")
            yield key, post["title"]


async def test_a_resource_raising_on_a_published_version_does_not_stall_the_mirror(
    redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    fragile = dataclasses.replace(service, resources={**service.resources, "fragile": Fragile})
    leader = ScriptedLeader(redis_client, keyspace, fragile)
    await leader.start_epoch()
    sync = MirrorSync(redis_client, keyspace, fragile, ServeConfig(port=0), block_ms=20)
    hub = await sync.bootstrap()
    reader = reader_of(hub, "fragile", {})
    events(reader)
    # The leader has no such instance: it accepts the write. The follower must apply it.
    await leader.write({"posts": [(9, [{"title": "boom", "author": "x"}])]})
    await caught_up(sync, leader)
    assert reader.close_reason == "user code failed"
    assert hub.instance_count == 0 and hub.stream_count == 0
    # Streams created afterwards work on the new state (or are rejected, for this resource).
    assert [e.entries for e in events(reader_of(hub))] == [[(1, [1]), (2, [1])]]
    with pytest.raises(GraphError):
        hub.create_stream("fragile", {})


async def test_a_follower_with_a_backlog_is_not_ready_until_it_caught_up(
    redis_client: Redis, keyspace: Keyspace, service: Service, leader: ScriptedLeader
) -> None:
    for n in range(5):
        await leader.write({"votes": [(f"a{n}", vote(n, "cy"))]})
    await leader.take_snapshot()
    for n in range(35):  # a backlog of 35 versions past the snapshot, read 10 at a time
        await leader.write({"votes": [(f"b{n}", vote(n % 7, f"u{n}"))]})
    sync = MirrorSync(
        redis_client, keyspace, service, ServeConfig(port=0), block_ms=20, batch=10,
        backoff=Backoff(0.005, 0.05),
    )  # fmt: skip
    await sync.bootstrap()
    states = [sync.state]
    while sync.state != "tailing":
        await sync.step()
        states.append(sync.state)
        assert len(states) < 50, states
    assert states[:4] == ["catching up"] * 4  # loaded at 5, then 15, 25, 35 of 40 applied
    assert sync.applied == leader.version == 40
    await caught_up(sync, leader)
    # Ready from then on, even when it falls behind again under load.
    for n in range(25):
        await leader.write({"votes": [(f"c{n}", vote(n % 5, f"w{n}"))]})
    await sync.step()
    assert sync.state == "tailing" and sync.applied < leader.version
    await caught_up(sync, leader)


async def test_a_follower_without_a_backlog_is_ready_as_soon_as_it_loaded(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await leader.take_snapshot()
    await sync.bootstrap()
    assert sync.state == "tailing"
