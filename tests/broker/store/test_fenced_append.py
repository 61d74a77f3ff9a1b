"""Fenced appends against a real server: who may publish, at which version, in which epoch."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from broker.store.codec import DeltaEntry, InputLogEntry, LeaseRecord
from broker.store.fenced import (
    EpochChangedError,
    FencedWriter,
    KeyspaceLostError,
    LeaseLostError,
    SnapshotMissingError,
    VersionConflictError,
)
from broker.store.keyspace import Keyspace
from broker.store.reads import read_idempotency, read_meta
from tests.support.fenced_steps import delta, init, lead, meta_at, stage, versions, writes
from tests.support.redis_server import stream_entries

pytestmark = pytest.mark.timeout(30)


async def test_init_creates_the_meta_and_persists_the_snapshot(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    meta = await init(redis_client, keyspace, writer)
    assert meta == meta_at(keyspace, "e1", 0)
    assert await redis_client.pttl(keyspace.snapshot("e1", 0)) == -1


async def test_init_needs_a_staged_snapshot(redis_client: Redis, keyspace: Keyspace) -> None:
    writer = await lead(redis_client, keyspace, "a")
    with pytest.raises(SnapshotMissingError):
        await writer.init_epoch(meta_at(keyspace, "e1", 0), replaces=None)
    assert await read_meta(redis_client, keyspace) is None


async def test_init_refuses_when_the_keyspace_exists(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    await stage(redis_client, keyspace, "e2", 0)
    with pytest.raises(EpochChangedError) as caught:
        await writer.init_epoch(meta_at(keyspace, "e2", 0), replaces=None)
    assert caught.value.current == "e1"


async def test_append_publishes_delta_and_input(redis_client: Redis, keyspace: Keyspace) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    entry = delta(writer, 1, ranked=((1, [2]),))
    result = await writer.append(entry, writes(writer, 1))
    assert (result.version, result.duplicate) == (1, False)
    [(stream_id, fields)] = await stream_entries(redis_client, keyspace.deltas)
    assert stream_id == b"1-0"
    assert DeltaEntry.decode(fields) == entry
    [(input_id, input_fields)] = await stream_entries(redis_client, keyspace.inputs)
    assert input_id == b"1-0"
    assert InputLogEntry.decode(input_fields) == writes(writer, 1)
    meta = await read_meta(redis_client, keyspace)
    assert meta is not None
    assert (meta.head, meta.head_ms) == (1, 1001)


async def test_append_without_input_leaves_the_input_log_alone(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    await writer.append(delta(writer, 1))
    assert await redis_client.exists(keyspace.inputs) == 0
    assert await versions(redis_client, keyspace.deltas) == [b"1-0"]


@pytest.mark.parametrize("version", [0, 1, 3, 10])
async def test_version_gap_is_rejected(
    redis_client: Redis, keyspace: Keyspace, version: int
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    await writer.append(delta(writer, 1))
    with pytest.raises(VersionConflictError) as caught:
        await writer.append(delta(writer, version), writes(writer, version))
    assert caught.value.head == 1
    assert await versions(redis_client, keyspace.deltas) == [b"1-0"]
    assert await redis_client.exists(keyspace.inputs) == 0


async def test_stale_holder_cannot_append_after_takeover(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    # The old leader is "paused" past its lease; a standby takes over and publishes.
    old = await lead(redis_client, keyspace, "old", ttl_ms=100)
    await init(redis_client, keyspace, old)
    await old.append(delta(old, 1))
    await asyncio.sleep(0.2)
    new = await lead(redis_client, keyspace, "new")
    assert new.lease.token > old.lease.token
    await new.append(delta(new, 2))
    # The old one wakes up and tries to publish its next version, then the same one again.
    for version in (2, 3):
        with pytest.raises(LeaseLostError) as caught:
            await old.append(delta(old, version), writes(old, version))
        assert caught.value.current == new.lease
    assert await versions(redis_client, keyspace.deltas) == [b"1-0", b"2-0"]
    assert await redis_client.exists(keyspace.inputs) == 0


async def test_expired_lease_fences_even_without_a_successor(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a", ttl_ms=50)
    await init(redis_client, keyspace, writer)
    await asyncio.sleep(0.12)
    with pytest.raises(LeaseLostError) as caught:
        await writer.append(delta(writer, 1))
    assert caught.value.current is None


async def test_same_holder_name_with_an_old_token_is_fenced(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    forged = FencedWriter(redis_client, keyspace, LeaseRecord(writer.lease.token + 1, "a"))
    with pytest.raises(LeaseLostError):
        await forged.append(delta(forged, 1))


async def test_wrong_epoch_and_lost_keyspace_are_told_apart(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    with pytest.raises(EpochChangedError) as caught:
        await writer.append(delta(writer, 1, epoch="other"))
    assert caught.value.current == "e1"
    await redis_client.delete(keyspace.meta)
    with pytest.raises(KeyspaceLostError):
        await writer.append(delta(writer, 1))
    assert await redis_client.exists(keyspace.deltas) == 0


async def test_idempotency_key_applies_once_across_leaders(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    first = await lead(redis_client, keyspace, "a", ttl_ms=100)
    await init(redis_client, keyspace, first)
    assert not (await first.append(delta(first, 1), writes(first, 1, "req-7"))).duplicate
    again = await first.append(delta(first, 2), writes(first, 2, "req-7"))
    assert (again.version, again.duplicate) == (1, True)
    await asyncio.sleep(0.2)
    second = await lead(redis_client, keyspace, "b")
    retried = await second.append(delta(second, 2), writes(second, 2, "req-7"))
    assert (retried.version, retried.duplicate) == (1, True)
    assert await versions(redis_client, keyspace.inputs) == [b"1-0"]
    assert await read_idempotency(redis_client, keyspace, "req-7") == 1
    assert await read_idempotency(redis_client, keyspace, "req-8") is None
    ttl = await redis_client.pttl(keyspace.idempotency("req-7"))
    assert ttl > 3600_000


async def test_append_checks_its_own_arguments(redis_client: Redis, keyspace: Keyspace) -> None:
    writer = await lead(redis_client, keyspace, "a")
    wrong_term = DeltaEntry(1, "e1", writer.lease.token + 1, 0)
    with pytest.raises(Exception, match="lease token"):
        await writer.append(wrong_term)
    with pytest.raises(Exception, match="version and term"):
        await writer.append(delta(writer, 1), writes(writer, 2))


async def test_racing_appends_of_one_version_publish_once(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    writer = await lead(redis_client, keyspace, "a")
    await init(redis_client, keyspace, writer)
    results = await asyncio.gather(
        *(writer.append(delta(writer, 1, ranked=((i, [i]),))) for i in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, VersionConflictError) for r in results if isinstance(r, Exception))
    assert await versions(redis_client, keyspace.deltas) == [b"1-0"]
