from __future__ import annotations

import pytest
from redis.asyncio import Redis

from broker.leader.lease import LeaderLease
from broker.store.codec import LeaseRecord, Meta
from broker.store.fenced import FencedWriter, SnapshotMissingError, StaleSnapshotError
from broker.store.keyspace import MANIFEST_FIELD, Keyspace
from broker.store.snapshot_codec import SnapshotManifest, snapshot_fields
from broker.store.snapshots import read_manifest, read_snapshot, stage_snapshot
from broker.types import Entry

pytestmark = pytest.mark.timeout(60)

INPUTS: dict[str, list[Entry]] = {"posts": [(i, [{"title": f"t{i}"}]) for i in range(25)]}
SHARED: dict[str, list[Entry]] = {
    "ranked": [([i, "x"], [i, i + 1]) for i in range(12)],
    "none": [],
}


def _manifest(version: int = 3, chunk_size: int = 4) -> SnapshotManifest:
    return SnapshotManifest.plan(
        epoch="e1", version=version, term=1, created_ms=5, chunk_size=chunk_size,
        inputs=INPUTS, shared=SHARED,
    )  # fmt: skip


async def _stage(redis: Redis, ks: Keyspace, manifest: SnapshotManifest, **kw: int) -> str:
    return await stage_snapshot(
        redis, ks, manifest, snapshot_fields(manifest, INPUTS, SHARED), **kw
    )


async def test_staged_snapshot_reads_back_per_part(redis_client: Redis, keyspace: Keyspace) -> None:
    key = await _stage(redis_client, keyspace, _manifest())
    assert key == keyspace.snapshot("e1", 3)
    # 7 input chunks + 3 shared chunks + the manifest.
    assert await redis_client.hlen(key) == 11
    manifest = await read_manifest(redis_client, keyspace, "e1", 3)
    assert manifest == _manifest()
    assert await read_snapshot(redis_client, keyspace, manifest, "shared") == SHARED
    assert await read_snapshot(redis_client, keyspace, manifest, "input") == INPUTS


async def test_unpublished_snapshot_expires(redis_client: Redis, keyspace: Keyspace) -> None:
    key = await _stage(redis_client, keyspace, _manifest(), ttl_ms=60_000)
    assert 0 < await redis_client.pttl(key) <= 60_000


async def test_restaging_replaces_leftovers(redis_client: Redis, keyspace: Keyspace) -> None:
    key = await _stage(redis_client, keyspace, _manifest(chunk_size=1))
    await _stage(redis_client, keyspace, _manifest(chunk_size=100))
    assert await redis_client.hlen(key) == 3  # one chunk each for posts and ranked, manifest


async def test_published_snapshot_is_never_restaged(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    record = await LeaderLease(redis_client, keyspace, "a", 10_000).acquire()
    assert isinstance(record, LeaseRecord)
    await _stage(redis_client, keyspace, _manifest(version=0))
    meta = Meta(keyspace.service, "e1", ("ranked", "none"), ("posts",), 0, 0, 0)
    await FencedWriter(redis_client, keyspace, record).init_epoch(meta, replaces=None)
    with pytest.raises(StaleSnapshotError):
        await _stage(redis_client, keyspace, _manifest(version=0))
    assert await redis_client.pttl(keyspace.snapshot("e1", 0)) == -1


async def test_missing_manifest_or_chunk_is_reported(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    with pytest.raises(SnapshotMissingError):
        await read_manifest(redis_client, keyspace, "e1", 3)
    key = await _stage(redis_client, keyspace, _manifest())
    manifest = await read_manifest(redis_client, keyspace, "e1", 3)
    await redis_client.hdel(key, "shared:ranked:1")
    with pytest.raises(SnapshotMissingError):
        await read_snapshot(redis_client, keyspace, manifest, "shared")


async def test_manifest_must_match_its_key(redis_client: Redis, keyspace: Keyspace) -> None:
    await redis_client.hset(keyspace.snapshot("e1", 4), MANIFEST_FIELD, _manifest(3).encode())
    with pytest.raises(SnapshotMissingError):
        await read_manifest(redis_client, keyspace, "e1", 4)


@pytest.mark.timeout(120)
async def test_large_state_round_trip(redis_client: Redis, keyspace: Keyspace) -> None:
    shared: dict[str, list[Entry]] = {"big": [(i, ["v" * 90]) for i in range(100_000)]}
    manifest = SnapshotManifest.plan(
        epoch="e1", version=1, term=1, created_ms=0, chunk_size=10_000, inputs={}, shared=shared
    )
    await stage_snapshot(redis_client, keyspace, manifest, snapshot_fields(manifest, {}, shared))
    assert await read_snapshot(redis_client, keyspace, manifest, "shared") == shared
