from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from broker.leader.lease import LeaderLease, LeaseError, LeaseHolder
from broker.store.codec import LeaseRecord, unique_holder
from broker.store.keyspace import Keyspace

pytestmark = pytest.mark.timeout(30)


def _lease(redis: Redis, keyspace: Keyspace, holder: str, ttl_ms: int = 5000) -> LeaderLease:
    return LeaderLease(redis, keyspace, holder, ttl_ms)


async def test_first_candidate_gets_token_one(redis_client: Redis, keyspace: Keyspace) -> None:
    record = await _lease(redis_client, keyspace, "a").acquire()
    assert record == LeaseRecord(1, "a")
    assert await redis_client.get(keyspace.lease) == b"1:a"
    assert 0 < await redis_client.pttl(keyspace.lease) <= 5000


async def test_second_candidate_sees_the_holder(redis_client: Redis, keyspace: Keyspace) -> None:
    await _lease(redis_client, keyspace, "a").acquire()
    lost = await _lease(redis_client, keyspace, "b").acquire()
    assert isinstance(lost, LeaseHolder)
    assert lost.record == LeaseRecord(1, "a")
    assert 0 < lost.ttl_ms <= 5000
    # Losing does not consume a token: the next grant is still 2.
    assert await redis_client.get(keyspace.fence) == b"1"


async def test_concurrent_candidates_elect_exactly_one(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    leases = [_lease(redis_client, keyspace, f"n{i}") for i in range(20)]
    results = await asyncio.gather(*(lease.acquire() for lease in leases))
    winners = [r for r in results if isinstance(r, LeaseRecord)]
    assert len(winners) == 1
    assert all(r.record == winners[0] for r in results if isinstance(r, LeaseHolder))


async def test_expiry_lets_a_standby_take_over_with_a_higher_token(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    first = await _lease(redis_client, keyspace, "a", ttl_ms=100).acquire()
    assert isinstance(first, LeaseRecord)
    standby = _lease(redis_client, keyspace, "b", ttl_ms=100)
    assert isinstance(await standby.acquire(), LeaseHolder)
    await asyncio.sleep(0.2)
    second = await standby.acquire()
    assert second == LeaseRecord(first.token + 1, "b")


async def test_renew_extends_only_for_the_holder(redis_client: Redis, keyspace: Keyspace) -> None:
    lease = _lease(redis_client, keyspace, "a", ttl_ms=300)
    record = await lease.acquire()
    assert isinstance(record, LeaseRecord)
    await redis_client.pexpire(keyspace.lease, 50)
    assert await lease.renew(record)
    assert await redis_client.pttl(keyspace.lease) > 200
    other = _lease(redis_client, keyspace, "b", ttl_ms=60_000)
    assert not await other.renew(LeaseRecord(record.token, "b"))
    # Same holder name with a stale token is not the holder either.
    assert not await other.renew(LeaseRecord(record.token - 1 or 99, "a"))
    assert await redis_client.pttl(keyspace.lease) <= 300


async def test_renew_after_expiry_fails_even_if_nobody_took_over(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    lease = _lease(redis_client, keyspace, "a", ttl_ms=50)
    record = await lease.acquire()
    assert isinstance(record, LeaseRecord)
    await asyncio.sleep(0.12)
    assert not await lease.renew(record)
    assert await redis_client.exists(keyspace.lease) == 0


async def test_renew_by_the_old_holder_after_takeover_fails(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    old = _lease(redis_client, keyspace, "a", ttl_ms=50)
    old_record = await old.acquire()
    assert isinstance(old_record, LeaseRecord)
    await asyncio.sleep(0.12)
    new_record = await _lease(redis_client, keyspace, "b").acquire()
    assert isinstance(new_record, LeaseRecord)
    assert not await old.renew(old_record)
    assert not await old.release(old_record)
    assert await redis_client.get(keyspace.lease) == new_record.encode()


async def test_release_frees_the_lease_at_once(redis_client: Redis, keyspace: Keyspace) -> None:
    lease = _lease(redis_client, keyspace, "a", ttl_ms=60_000)
    record = await lease.acquire()
    assert isinstance(record, LeaseRecord)
    assert await lease.release(record)
    assert await lease.current() is None
    assert await _lease(redis_client, keyspace, "b").acquire() == LeaseRecord(2, "b")


async def test_current_reports_holder_and_ttl(redis_client: Redis, keyspace: Keyspace) -> None:
    lease = _lease(redis_client, keyspace, "a")
    assert await lease.current() is None
    record = await lease.acquire()
    current = await lease.current()
    assert current is not None
    assert current.record == record
    assert 0 < current.ttl_ms <= 5000


def test_unique_holders_differ_within_one_node() -> None:
    first, second = unique_holder("pod-0"), unique_holder("pod-0")
    assert first != second
    assert first.startswith("pod-0/")


@pytest.mark.parametrize(("holder", "ttl_ms"), [("", 1000), ("a", 0)])
def test_invalid_lease_settings(holder: str, ttl_ms: int) -> None:
    with pytest.raises(LeaseError):
        LeaderLease(Redis(), Keyspace("x"), holder, ttl_ms)
