"""Periodic snapshots and trimming, and rebuilding a leader from them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from broker.leader.rebuild import RebuildError, rebuild
from broker.store.keyspace import MANIFEST_FIELD, Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import (
    admin_state,
    candidate,
    leading,
    meta_of,
    patch,
    stream_versions,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(60)


async def test_snapshots_every_n_versions_trim_the_streams_and_rebuild_the_state(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "a", snapshot_every=5, chunk_size=2) as a:
        lead = await leading(a)
        for i in range(9):
            await patch(a.url or "", "votes", [[f"w{i}", vote(i % 4, "u")]])
        await eventually(lambda: lead.snapshot_version == 5, within=5)
        # The first snapshot replaced the epoch's initial one: nothing before it to trim.
        assert await redis_client.xlen(keyspace.deltas) == 9
        for i in range(9, 12):
            await patch(a.url or "", "votes", [[f"w{i}", vote(i % 4, "u")]])
        await eventually(lambda: lead.snapshot_version == 10, within=5)
        # History after the previous snapshot (5) stays for followers slightly behind.
        assert await stream_versions(redis_client, keyspace.deltas) == list(range(6, 13))
        assert await stream_versions(redis_client, keyspace.inputs) == list(range(6, 13))
        meta = await meta_of(redis_client, keyspace)
        assert (meta.snapshot, meta.head) == (10, 12)
        current = keyspace.snapshot(meta.epoch, 10)
        assert await redis_client.hexists(current, MANIFEST_FIELD)
        assert await redis_client.pttl(current) == -1
        assert 0 < await redis_client.pttl(keyspace.snapshot(meta.epoch, 5))
        state = await admin_state(a.url or "")

    # A fresh candidate can only get there through the snapshot: versions 1..5 are gone.
    async with candidate(redis_url, service, "c") as c:
        rebuilt = await leading(c)
        assert rebuilt.engine.version == 12
        assert (await admin_state(c.url or ""))["checksums"] == state["checksums"]
        assert (await patch(c.url or "", "votes", [["w12", vote(1, "u")]])).json() == {
            "version": 13
        }


async def test_a_snapshot_is_taken_after_the_interval_when_the_version_moved(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "a", snapshot_interval_s=0.3) as a:
        lead = await leading(a)
        await patch(a.url or "", "votes", [["w1", vote(1, "u")]])
        await patch(a.url or "", "votes", [["w2", vote(2, "u")]])
        await eventually(lambda: lead.snapshot_version == 2, within=5)
        assert (await meta_of(redis_client, keyspace)).snapshot == 2


async def test_rebuild_refuses_an_input_log_with_a_hole(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "a") as a:
        await leading(a)
        for i in range(3):
            await patch(a.url or "", "votes", [[f"w{i}", vote(1, "u")]])
        meta = await meta_of(redis_client, keyspace)
        engine = await rebuild(redis_client, keyspace, service, meta)
        assert engine.version == 3
        await redis_client.xdel(keyspace.inputs, "2-0")
        with pytest.raises(RebuildError, match="jumps from version 1 to 3"):
            await rebuild(redis_client, keyspace, service, meta)
