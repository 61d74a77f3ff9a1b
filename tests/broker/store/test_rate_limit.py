"""GCRA: the rule as a table, and the Lua script against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from broker.errors import ConfigError
from broker.store.keyspace import Keyspace
from broker.store.rate_limit import RateLimit, Verdict, gcra, take

pytestmark = pytest.mark.timeout(30)

# 10 a second (one every 100 ms), 3 at once.
LIMIT = RateLimit(per_s=10, burst=3)


@pytest.mark.parametrize(
    ("tat", "now", "allowed", "new_tat", "retry_s"),
    [
        (None, 1000.0, True, 1100.0, 0.0),  # a new client
        (500.0, 1000.0, True, 1100.0, 0.0),  # an expired TAT counts as none
        (1100.0, 1000.0, True, 1200.0, 0.0),  # second of the burst
        (1200.0, 1000.0, True, 1300.0, 0.0),  # third, the last of the burst
        (1300.0, 1000.0, False, None, 0.1),  # fourth at once: one interval to wait
        (1300.0, 1100.0, True, 1400.0, 0.0),  # ... and after it, allowed
        (1300.0, 1050.0, False, None, 0.05),
    ],
)
def test_gcra(
    tat: float | None, now: float, allowed: bool, new_tat: float | None, retry_s: float
) -> None:
    verdict, stored = gcra(tat, now, LIMIT)
    assert verdict.allowed is allowed
    assert stored == new_tat
    assert verdict.retry_after_s == pytest.approx(retry_s)


def test_rate_limits_are_validated() -> None:
    assert RateLimit(0, 1).off
    for per_s, burst in [(-1, 1), (float("inf"), 1), (1, 0), (1, 1.5), (True, 1)]:
        with pytest.raises(ConfigError):
            RateLimit(per_s, burst)  # type: ignore[arg-type]


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert Verdict(False, 0.01).retry_after_header == "1"
    assert Verdict(False, 1.2).retry_after_header == "2"
    assert Verdict(False, 30.0).retry_after_header == "30"


async def test_the_script_allows_the_burst_then_refuses(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    limit = RateLimit(per_s=1, burst=5)
    key = keyspace.rate("streams", "addr:203.0.113.7")
    verdicts = [await take(redis_client, key, limit) for _ in range(8)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 3
    assert all(0 < v.retry_after_s <= 1.0 for v in verdicts[5:])
    assert verdicts[5].retry_after_header == "1"
    # The state expires once the bucket is empty again: about burst intervals from now.
    assert 4000 < await redis_client.pttl(key) <= 5000
    # Another client, another action: their own buckets.
    assert (await take(redis_client, keyspace.rate("streams", "addr:203.0.113.8"), limit)).allowed
    assert (await take(redis_client, keyspace.rate("writes", "addr:203.0.113.7"), limit)).allowed


async def test_the_script_refills_at_the_rate(redis_client: Redis, keyspace: Keyspace) -> None:
    limit = RateLimit(per_s=20, burst=2)
    key = keyspace.rate("writes", "addr:192.0.2.1")
    assert [(await take(redis_client, key, limit)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    await asyncio.sleep(0.06)  # one interval (50 ms): one more
    assert (await take(redis_client, key, limit)).allowed
    assert not (await take(redis_client, key, limit)).allowed


async def test_concurrent_callers_share_one_bucket(redis_client: Redis, keyspace: Keyspace) -> None:
    limit = RateLimit(per_s=0.5, burst=10)
    key = keyspace.rate("streams", "addr:198.51.100.1")
    verdicts = await asyncio.gather(*(take(redis_client, key, limit) for _ in range(40)))
    assert sum(v.allowed for v in verdicts) == 10


def test_rate_keys_are_spelled_in_the_keyspace() -> None:
    assert (
        Keyspace("hn").rate("streams", "addr:10.0.0.1") == "skiff:{hn}:rate:streams:addr:10.0.0.1"
    )
