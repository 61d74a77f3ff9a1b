"""MirrorSync continuity: gaps, trimmed positions, new epochs and a lost keyspace lead to a
resync that keeps the SSE readers connected."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from broker.client import Init, Update
from broker.follower.sync import MirrorSync
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.follower_support import caught_up, events, reader_of, record_versions
from tests.support.helpers import vote
from tests.support.scripted_leader import ScriptedLeader, mirror_state

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("after_trim", [0, 2], ids=["stream-emptied", "entries-after-trim"])
async def test_a_trimmed_position_resyncs_from_the_newest_snapshot(
    leader: ScriptedLeader, sync: MirrorSync, after_trim: int
) -> None:
    hub = await sync.bootstrap()
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await caught_up(sync, leader)
    reader = reader_of(hub)
    events(reader)
    # The follower sleeps through many versions, a snapshot and a trim past its position.
    for n in range(6):
        await leader.write({"votes": [(f"y{n}", vote(2, "dee"))]})
    snapshot = await leader.take_snapshot(trim_before=leader.version + 1)
    for n in range(after_trim):
        await leader.write({"votes": [(f"z{n}", vote(3, "eve"))]})
    seen = record_versions(hub)
    await caught_up(sync, leader)
    assert sync.resyncs == 1
    assert seen == [snapshot, *range(snapshot + 1, leader.version + 1)]
    # Same epoch: the connected reader gets updates bringing it to the state, not an init.
    got = events(reader)
    assert all(isinstance(e, Update) and e.run == leader.epoch for e in got)
    assert got[0].version == snapshot and (2, [7]) in got[0].entries


async def test_a_version_gap_is_never_applied(
    leader: ScriptedLeader, sync: MirrorSync, redis_client: Redis
) -> None:
    hub = await sync.bootstrap()
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await caught_up(sync, leader)
    await leader.append_raw(leader.version + 2, scores=[(1, [99])])
    for _ in range(10):
        await sync.step()
    # No newer snapshot to resync from: it holds its state and says it is not ready.
    assert hub.engine.version == leader.version and sync.state != "tailing"
    assert dict(mirror_state(hub.engine)["scores"])[1] == [2]


async def test_an_entry_of_another_epoch_is_never_applied(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    hub = await sync.bootstrap()
    await leader.append_raw(1, epoch="someone-else", scores=[(1, [99])])
    for _ in range(5):
        await sync.step()
    assert hub.engine.version == 0 and sync.state != "tailing"


async def test_a_new_epoch_reinits_connected_readers(
    leader: ScriptedLeader, sync: MirrorSync
) -> None:
    hub = await sync.bootstrap()
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await caught_up(sync, leader)
    reader = reader_of(hub)
    old_epoch = leader.epoch
    assert [e.run for e in events(reader)] == [old_epoch]
    # Redis lost data: the leader republishes its memory under a new epoch.
    await leader.start_epoch()
    version = await leader.write({"votes": [("y", vote(2, "cy"))]})
    await caught_up(sync, leader)
    assert (hub.run, sync.resyncs) == (leader.epoch, 1)
    assert not reader.closed
    assert events(reader) == [
        Init(leader.epoch, version - 1, [(1, [2]), (2, [1])]),
        Update(leader.epoch, version, [(2, [2])]),
    ]


async def test_a_new_epoch_at_a_lower_version(
    leader: ScriptedLeader, sync: MirrorSync, redis_client: Redis, keyspace: Keyspace,
    service: Service,
) -> None:  # fmt: skip
    hub = await sync.bootstrap()
    for n in range(4):
        await leader.write({"votes": [(f"x{n}", vote(1, "cy"))]})
    await caught_up(sync, leader)
    reader = reader_of(hub)
    events(reader)
    # A new leader without the old one's memory (and Redis without its data) starts over.
    await leader.resign()
    fresh = ScriptedLeader(redis_client, keyspace, service)
    await fresh.start_epoch()
    await caught_up(sync, fresh)
    assert hub.engine.version == 0 and hub.run == fresh.epoch
    assert events(reader) == [Init(fresh.epoch, 0, [(1, [1]), (2, [1])])]


async def test_lost_keyspace_waits_then_follows_the_republished_epoch(
    leader: ScriptedLeader, sync: MirrorSync, redis_client: Redis, keyspace: Keyspace
) -> None:
    hub = await sync.bootstrap()
    await leader.write({"votes": [("x", vote(1, "cy"))]})
    await caught_up(sync, leader)
    async for key in redis_client.scan_iter(match=keyspace.pattern):
        await redis_client.unlink(key)
    await sync.step()
    assert sync.state == "waiting" and hub.engine.version == 1
    await leader.lead()
    await leader.start_epoch()
    await caught_up(sync, leader)
    assert hub.run == leader.epoch
