"""Shared steps of the fenced-writer tests: lead, stage, initialise, build entries."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from broker.leader.lease import LeaderLease
from broker.store.codec import DeltaEntry, InputLogEntry, LeaseRecord, Meta
from broker.store.fenced import FencedWriter
from broker.store.keyspace import Keyspace
from broker.store.reads import read_meta
from broker.store.snapshot_codec import SnapshotManifest, snapshot_fields
from broker.store.snapshots import stage_snapshot
from broker.types import Entry
from tests.support.redis_server import stream_entries

INPUTS: dict[str, list[Entry]] = {"posts": [(1, ["a"])]}
SHARED: dict[str, list[Entry]] = {"ranked": [(1, [1])]}


async def lead(redis: Redis, ks: Keyspace, holder: str, ttl_ms: int = 10_000) -> FencedWriter:
    record = await LeaderLease(redis, ks, holder, ttl_ms).acquire()
    assert isinstance(record, LeaseRecord)
    return FencedWriter(redis, ks, record)


async def stage(redis: Redis, ks: Keyspace, epoch: str, version: int) -> None:
    manifest = SnapshotManifest.plan(
        epoch=epoch, version=version, term=1, created_ms=0, chunk_size=10, inputs=INPUTS,
        shared=SHARED,
    )  # fmt: skip
    await stage_snapshot(redis, ks, manifest, snapshot_fields(manifest, INPUTS, SHARED))


def meta_at(ks: Keyspace, epoch: str, version: int) -> Meta:
    return Meta(
        service=ks.service,
        epoch=epoch,
        shared=("ranked",),
        inputs=("posts",),
        head=version,
        snapshot=version,
        created_ms=1,
    )


async def init(redis: Redis, ks: Keyspace, writer: FencedWriter, epoch: str = "e1") -> Meta:
    await stage(redis, ks, epoch, 0)
    await writer.init_epoch(meta_at(ks, epoch, 0), replaces=None)
    meta = await read_meta(redis, ks)
    assert meta is not None
    return meta


def delta(writer: FencedWriter, version: int, epoch: str = "e1", **changes: Any) -> DeltaEntry:
    return DeltaEntry(version, epoch, writer.lease.token, ts_ms=1000 + version, changes=changes)


def writes(writer: FencedWriter, version: int, key: str | None = None) -> InputLogEntry:
    return InputLogEntry(version, writer.lease.token, 0, {"posts": ((version, ["p"]),)}, key)


async def versions(redis: Redis, stream: str) -> list[bytes]:
    return [stream_id for stream_id, _ in await stream_entries(redis, stream)]
