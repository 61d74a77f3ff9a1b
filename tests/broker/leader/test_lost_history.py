"""Lost history: Redis showing the current epoch with a shorter history than was published
(what a failover to a replica that had not received the last entries looks like). A live
leader republishes its state under a new epoch; a standby taking over from such a Redis does
too when a node reports versions Redis lacks; a follower holding the lost versions applies
nothing more of that epoch and resyncs into the new one. Each time: an error in the log and
`skiff_redis_lost_history` counts it."""

from __future__ import annotations

import contextlib
import time

import pytest
from redis.asyncio import Redis

from broker.follower.node import follower_node
from broker.leader.node import LeaderNode
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import CONFIG, admin_state, candidate, leading, meta_of, patch
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(90)

WAIT_S = 3.0


async def forget_after(redis: Redis, keyspace: Keyspace, head: int) -> None:
    """Make Redis look like a replica that received versions up to `head` only."""
    meta = await meta_of(redis, keyspace)
    for version in range(head + 1, meta.head + 1):
        await redis.xdel(keyspace.deltas, f"{version}-0")
        await redis.xdel(keyspace.inputs, f"{version}-0")
    await redis.hset(keyspace.meta, "head", head)


def lost_count(node: LeaderNode) -> float:
    return node.ctx.metrics.lost_history._value.get()  # type: ignore[attr-defined]


async def write(url: str, count: int, first: int = 0) -> list[int]:
    versions = []
    for i in range(first, first + count):
        response = await patch(url, "votes", [[f"w{i}", vote(i % 3, f"u{i}")]], f"k{i}")
        assert response.status_code == 200, response.text
        versions.append(response.json()["version"])
    return versions


async def test_a_live_leader_republishes_what_redis_lost(
    redis_url: str,
    redis_client: Redis,
    keyspace: Keyspace,
    service: Service,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with candidate(redis_url, service, "a", lease_ttl_s=1.5) as a:
        lead = await leading(a)
        await write(a.url or "", 10)
        before = await admin_state(a.url or "")
        epoch = lead.epoch
        await forget_after(redis_client, keyspace, 7)
        await eventually(lambda: lead.epoch != epoch, within=10)
        assert lost_count(a) == 1
        assert "versions 8..10 were lost" in caplog.text
        meta = await meta_of(redis_client, keyspace)
        assert (meta.epoch, meta.head) == (lead.epoch, 10)
        after = await admin_state(a.url or "")
        assert after["checksums"] == before["checksums"]
        assert await write(a.url or "", 1, first=10) == [11]


async def test_a_standby_does_not_continue_a_shorter_history(
    redis_url: str,
    redis_client: Redis,
    keyspace: Keyspace,
    service: Service,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(candidate(redis_url, service, "a"))
        await leading(a)
        follower = await stack.enter_async_context(
            follower_node(service, CONFIG, redis_url=redis_url, node_id="f")
        )
        await write(a.url or "", 10)
        await eventually(lambda: follower.sync.applied == 10, within=10)
        epoch = follower.sync.epoch
        # The old leader goes (its lease released); Redis "fails over" to a stale replica.
        a.stop()
        await eventually(lambda: a.leadership is None, within=10)
        await forget_after(redis_client, keyspace, 7)
        await eventually(lambda: follower.sync.state == "waiting", within=5)
        # No node that leads can be seen, but one may still hold the lost versions (its own
        # heartbeat may be among what the failover lost): b gives it lost_history_wait_s.
        started = time.monotonic()
        async with candidate(redis_url, service, "b", lost_history_wait_s=WAIT_S) as b:
            lead = await leading(b, within=WAIT_S + 10)
            assert time.monotonic() - started >= WAIT_S
            assert lead.epoch != epoch
            assert lost_count(b) == 1
            # The follower leaves the lost versions behind: it resyncs into the new epoch.
            await eventually(lambda: follower.sync.epoch == lead.epoch, within=10)
            await write(b.url or "", 2, first=10)
            await eventually(lambda: follower.sync.applied == lead.engine.version, within=10)
            leader_state = await admin_state(b.url or "")
            follower_state = await admin_state(follower.url)
            assert follower_state["checksums"] == leader_state["checksums"]


async def test_a_follower_applies_nothing_more_of_a_shortened_epoch(
    redis_url: str,
    redis_client: Redis,
    keyspace: Keyspace,
    service: Service,
) -> None:
    async with candidate(redis_url, service, "a") as a:
        lead = await leading(a)
        async with follower_node(service, CONFIG, redis_url=redis_url, node_id="f") as follower:
            await write(a.url or "", 5)
            await eventually(lambda: follower.sync.applied == 5, within=10)
            # Hold the leader's lock: nothing it does can republish meanwhile.
            async with lead.lock:
                await forget_after(redis_client, keyspace, 3)
                await eventually(lambda: follower.sync.state == "waiting", within=5)
                assert follower.sync.applied == 5
            await eventually(lambda: follower.sync.epoch == lead.epoch, within=10)
            await eventually(lambda: follower.sync.state == "tailing", within=10)
            assert lost_count(a) == 1
