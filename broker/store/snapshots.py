"""Staging a snapshot hash before its fenced publication, and reading one back.

Staging is plain writes, not fenced: the hash is invisible until `FencedWriter.publish_snapshot`
(or `init_epoch`) points meta at it, and it carries an expiry until then, so a leader that dies
mid-way leaves nothing behind for long. The manifest is written last: its presence is what the
publication scripts take as "staging complete".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.store.fenced import SnapshotMissingError, StaleSnapshotError
from broker.store.keyspace import MANIFEST_FIELD, Keyspace, SnapshotPart
from broker.store.reads import read_meta
from broker.store.scripts import RedisCallError
from broker.store.snapshot_codec import SnapshotManifest, decode_chunk
from broker.types import Entry

#: How long an unpublished snapshot survives its stager.
STAGING_TTL_MS: Final = 10 * 60 * 1000
# Bytes of chunks sent per round trip: large enough to amortise latency, small enough that a
# stalled write does not hold hundreds of megabytes in the client.
_BATCH_BYTES: Final = 8 * 1024 * 1024


async def stage_snapshot(
    redis: Redis,
    keyspace: Keyspace,
    manifest: SnapshotManifest,
    fields: Iterable[tuple[str, bytes]],
    *,
    ttl_ms: int = STAGING_TTL_MS,
) -> str:
    """Write the snapshot hash (chunks, then the manifest); returns its key."""
    key = keyspace.snapshot(manifest.epoch, manifest.version)
    try:
        meta = await read_meta(redis, keyspace)
        if meta and (meta.epoch, meta.snapshot) == (manifest.epoch, manifest.version):
            # Restaging would rewrite the hash followers are loading right now.
            raise StaleSnapshotError(meta.snapshot)
        # A leftover from a stager that died at this same version may hold other fields.
        await redis.delete(key)
        batch: list[tuple[str, bytes]] = []
        size = 0
        for field, chunk in fields:
            batch.append((field, chunk))
            size += len(chunk)
            if size >= _BATCH_BYTES:
                await _write(redis, key, batch, ttl_ms)
                batch, size = [], 0
        batch.append((MANIFEST_FIELD, manifest.encode()))
        await _write(redis, key, batch, ttl_ms)
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("staging a snapshot", err) from err
    return key


async def _write(redis: Redis, key: str, batch: list[tuple[str, bytes]], ttl_ms: int) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for field, chunk in batch:
            pipe.hset(key, field, chunk)
        # Refreshed with every batch: a slow staging of a huge state must not expire midway.
        pipe.pexpire(key, ttl_ms)
        await pipe.execute()


async def read_manifest(
    redis: Redis, keyspace: Keyspace, epoch: str, version: int
) -> SnapshotManifest:
    """The manifest of the snapshot at (epoch, version); SnapshotMissingError when absent."""
    key = keyspace.snapshot(epoch, version)
    try:
        raw = await redis.hget(key, MANIFEST_FIELD)
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("reading a snapshot manifest", err) from err
    if raw is None:
        raise SnapshotMissingError(f"no snapshot {key}")
    manifest = SnapshotManifest.decode(raw)
    if (manifest.epoch, manifest.version) != (epoch, version):
        raise SnapshotMissingError(f"{key} holds snapshot {manifest.epoch}/{manifest.version}")
    return manifest


async def read_snapshot(
    redis: Redis, keyspace: Keyspace, manifest: SnapshotManifest, part: SnapshotPart
) -> dict[str, list[Entry]]:
    """Every collection of one part of the snapshot, in key order.

    Raises SnapshotMissingError when a chunk vanished (the snapshot was replaced and its grace
    period ran out mid-read): the caller starts over from the current meta.
    """
    key = keyspace.snapshot(manifest.epoch, manifest.version)
    out: dict[str, list[Entry]] = {}
    try:
        for collection in manifest.part(part):
            entries: list[Entry] = []
            fields = collection.fields()
            for start in range(0, len(fields), 16):
                wanted = fields[start : start + 16]
                chunks: list[Any] = await redis.hmget(key, wanted)
                for field, chunk in zip(wanted, chunks, strict=True):
                    if chunk is None:
                        raise SnapshotMissingError(f"{key} lost chunk {field!r}")
                    entries.extend(decode_chunk(chunk))
            if len(entries) != collection.entries:
                raise SnapshotMissingError(f"{key}: {collection.name!r} has the wrong size")
            out[collection.name] = entries
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("reading a snapshot", err) from err
    return out
