"""Fenced epoch starts and snapshot publication against a real server."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from broker.store.fenced import (
    EpochChangedError,
    FencedWriter,
    KeyspaceLostError,
    LeaseLostError,
    SnapshotMissingError,
    StaleSnapshotError,
    VersionConflictError,
)
from broker.store.keyspace import Keyspace
from broker.store.reads import read_meta
from tests.support.fenced_steps import delta, init, lead, meta_at, stage, versions, writes
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(30)


async def _publish_setup(redis: Redis, ks: Keyspace, versions: int) -> FencedWriter:
    writer = await lead(redis, ks, "a")
    await init(redis, ks, writer)
    for version in range(1, versions + 1):
        await writer.append(delta(writer, version), writes(writer, version))
    return writer


async def test_publish_snapshot_moves_the_pointer_and_trims(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await _publish_setup(redis_client, keyspace, 5)
    await stage(redis_client, keyspace, "e1", 4)
    trimmed = await writer.publish_snapshot(
        "e1", 4, replaces=0, trim_before=3, now_ms=99, grace_ms=5000
    )
    assert (trimmed.deltas, trimmed.inputs) == (2, 2)
    assert await versions(redis_client, keyspace.deltas) == [b"3-0", b"4-0", b"5-0"]
    assert await versions(redis_client, keyspace.inputs) == [b"3-0", b"4-0", b"5-0"]
    meta = await read_meta(redis_client, keyspace)
    assert meta is not None
    assert (meta.snapshot, meta.snapshot_ms, meta.head) == (4, 99, 5)
    assert await redis_client.pttl(keyspace.snapshot("e1", 4)) == -1
    assert 0 < await redis_client.pttl(keyspace.snapshot("e1", 0)) <= 5000
    # Trimming up to the snapshot itself keeps exactly what follows it.
    await stage(redis_client, keyspace, "e1", 5)
    await writer.publish_snapshot("e1", 5, replaces=4, trim_before=6, now_ms=100)
    assert await versions(redis_client, keyspace.deltas) == []
    await writer.append(delta(writer, 6))
    assert await versions(redis_client, keyspace.deltas) == [b"6-0"]


@pytest.mark.parametrize(
    ("version", "replaces", "trim_before", "error"),
    [
        (4, 1, 1, StaleSnapshotError),  # the pointer is at 0, not 1
        (6, 0, 1, VersionConflictError),  # beyond the head
        (4, 0, 6, VersionConflictError),  # would trim entries after the snapshot
        (3, 0, 1, SnapshotMissingError),  # nothing staged at 3
    ],
)
async def test_publish_snapshot_rejections(
    redis_client: Redis,
    keyspace: Keyspace,
    version: int,
    replaces: int,
    trim_before: int,
    error: type[Exception],
) -> None:
    writer = await _publish_setup(redis_client, keyspace, 5)
    await stage(redis_client, keyspace, "e1", 4)
    await stage(redis_client, keyspace, "e1", 6)
    with pytest.raises(error):
        await writer.publish_snapshot(
            "e1", version, replaces=replaces, trim_before=trim_before, now_ms=1
        )
    assert len(await versions(redis_client, keyspace.deltas)) == 5
    meta = await read_meta(redis_client, keyspace)
    assert meta is not None and meta.snapshot == 0


async def test_publish_snapshot_is_fenced(redis_client: Redis, keyspace: Keyspace) -> None:
    writer = await _publish_setup(redis_client, keyspace, 3)
    await stage(redis_client, keyspace, "e1", 3)
    await redis_client.delete(keyspace.lease)
    with pytest.raises(LeaseLostError):
        await writer.publish_snapshot("e1", 3, replaces=0, trim_before=4, now_ms=1)
    assert len(await versions(redis_client, keyspace.deltas)) == 3


async def test_new_epoch_replaces_streams_and_fences_the_old_epoch(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await _publish_setup(redis_client, keyspace, 3)
    old_meta = await read_meta(redis_client, keyspace)
    assert old_meta is not None
    # Redis came back stale (head 3); the leader, at version 7 in memory, starts epoch e2 there.
    await stage(redis_client, keyspace, "e2", 7)
    await writer.init_epoch(meta_at(keyspace, "e2", 7), replaces=old_meta, grace_ms=5000)
    assert await read_meta(redis_client, keyspace) == meta_at(keyspace, "e2", 7)
    assert await redis_client.exists(keyspace.deltas, keyspace.inputs) == 0
    assert 0 < await redis_client.pttl(keyspace.snapshot("e1", 0)) <= 5000
    with pytest.raises(EpochChangedError):
        await writer.append(delta(writer, 4, epoch="e1"))
    await writer.append(delta(writer, 8, epoch="e2"))
    assert await versions(redis_client, keyspace.deltas) == [b"8-0"]
    # A second leader that read the e1 meta cannot re-initialise over e2.
    await stage(redis_client, keyspace, "e3", 7)
    with pytest.raises(EpochChangedError):
        await writer.init_epoch(meta_at(keyspace, "e3", 7), replaces=old_meta)


async def test_flushall_fences_then_a_new_epoch_starts(
    redis_server_factory: ServerFactory, keyspace: Keyspace
) -> None:
    server = await redis_server_factory()
    redis = Redis.from_url(server.url)
    try:
        writer = await lead(redis, keyspace, "a")
        await init(redis, keyspace, writer)
        await writer.append(delta(writer, 1))
        await redis.flushall()
        # The lease went with the data: the leader is fenced, by nobody.
        with pytest.raises(LeaseLostError) as caught:
            await writer.append(delta(writer, 2))
        assert caught.value.current is None
        # It takes the lease again (the counter restarted) and finds the keyspace gone...
        again = await lead(redis, keyspace, "a")
        assert again.lease.token == 1
        with pytest.raises(KeyspaceLostError):
            await again.append(delta(again, 2))
        # ...so it republishes its in-memory state (version 1) under a new epoch.
        await stage(redis, keyspace, "e2", 1)
        await again.init_epoch(meta_at(keyspace, "e2", 1), replaces=None)
        await again.append(delta(again, 2, epoch="e2"))
        assert await versions(redis, keyspace.deltas) == [b"2-0"]
    finally:
        await redis.aclose()
