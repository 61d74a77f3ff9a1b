"""MirrorSync against real Redis, with the leader played by the test (ScriptedLeader)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from broker import Hub, ServeConfig
from broker.client import Init, Update
from broker.keyspace import Keyspace
from broker.mirror_sync import Backoff, MirrorSync
from graph import Service, TickResult
from tests.broker.helpers import decode_chunk, vote
from tests.broker.scripted_leader import ScriptedLeader, leader_state, mirror_state
from tests.broker.services import make_service

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def service(keyspace: Keyspace) -> Service:
    return dataclasses.replace(make_service(), name=keyspace.service)


@pytest.fixture
async def leader(redis_client: Redis, keyspace: Keyspace, service: Service) -> ScriptedLeader:
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.start_epoch()
    return leader


@pytest.fixture
def sync(redis_client: Redis, keyspace: Keyspace, service: Service) -> MirrorSync:
    return MirrorSync(
        redis_client, keyspace, service, ServeConfig(port=0), block_ms=20,
        backoff=Backoff(0.005, 0.05),
    )  # fmt: skip


async def step_until(sync: MirrorSync, done: Callable[[], bool], steps: int = 200) -> None:
    for _ in range(steps):
        if done():
            return
        await sync.step()
    raise AssertionError(f"not reached: state {sync.state} ({sync.reason}), at {sync.applied}")


async def caught_up(sync: MirrorSync, leader: ScriptedLeader) -> None:
    await step_until(sync, lambda: sync.state == "tailing" and sync.applied == leader.version)
    assert sync.epoch == leader.epoch
    assert sync.hub is not None
    assert mirror_state(sync.hub.engine) == leader_state(leader)


def record_versions(hub: Hub) -> list[int]:
    """Every version the hub publishes, in order."""
    seen: list[int] = []
    publish = hub.publish

    def recording(result: TickResult) -> None:
        seen.append(result.version)
        publish(result)

    hub.publish = recording  # type: ignore[method-assign]
    return seen


def reader_of(hub: Hub, resource: str = "top", params: Any = None) -> Any:
    stream = hub.create_stream(resource, params if params is not None else {"limit": 10})
    return hub.subscribe(stream)


def events(reader: Any) -> list[Any]:
    out = []
    while (chunk := reader.take()) is not None:
        out.append(decode_chunk(chunk))
    return out


@contextlib.asynccontextmanager
async def running(sync: MirrorSync) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sync.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
    await _until(lambda: leader.snapshot > 0)
    hub = await sync.bootstrap()
    start = hub.engine.version
    seen = record_versions(hub)
    async with running(sync):
        await writer
        await _until(lambda: sync.applied == leader.version and sync.state == "tailing")
    assert start > 0
    assert sync.resyncs == 0
    assert seen == list(range(start + 1, leader.version + 1))
    assert mirror_state(hub.engine) == leader_state(leader)


# -- continuity ----------------------------------------------------------------------------------
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


async def _until(done: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
