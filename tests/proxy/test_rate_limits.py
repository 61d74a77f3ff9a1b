"""Rate limits at the proxy: a burst beyond the limit is refused 429 with Retry-After before any
node is asked, so it costs no instance; two proxies on one Redis count a client together; the
control token's holder is not limited; X-Forwarded-For is believed only from trusted peers; a
proxy without Redis goes on limiting on its own."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from broker.store.connection import connect
from broker.store.keyspace import Keyspace
from broker.store.rate_limit import RateLimit
from proxy import ProxyConfig, RunningProxy
from proxy.rate_limits import LocalBuckets, RateLimiter
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import running_proxy, set_leader, until_leader, until_serving
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(30)

# Five at once, then one every 20 s: nothing refills during a test.
TIGHT = RateLimit(per_s=0.05, burst=5)


@pytest.fixture
def config(config: ProxyConfig) -> ProxyConfig:
    return dataclasses.replace(config, stream_rate=TIGHT, write_rate=TIGHT)


async def create(http: httpx.AsyncClient, n: int, **headers: str) -> httpx.Response:
    # Distinct params: each allowed creation is a new resource instance on the node.
    return await http.post("/v1/streams/top", json={"limit": n}, headers=headers)


async def test_a_burst_beyond_the_limit_gets_429_and_costs_no_instance(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    node = await start_node("f-0")
    await until_serving(proxy, 1)
    replies = [await create(http, n) for n in range(1, 13)]
    assert [r.status_code for r in replies] == [201] * 5 + [429] * 7
    refused = replies[-1]
    assert refused.json() == {"error": "too many stream creations; retry in 20 s"}
    assert 15 <= int(refused.headers["retry-after"]) <= 20
    assert node.hub.instance_count == 5
    assert node.hub.stream_count == 5
    metrics = (await http.get("/metrics")).text
    assert 'skiff_proxy_rate_limited_total{action="streams"} 7.0' in metrics
    # Reads of the streams it has are not limited.
    assert (await http.post("/v1/snapshot/top", json={"limit": 1})).status_code == 200


async def test_the_limit_holds_across_two_proxies(
    config: ProxyConfig, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    node = await start_node("f-0", role="leader")
    await set_leader(redis_client, keyspace, "f-0", 1)
    async with running_proxy(config) as one, running_proxy(config) as two:
        for proxy in (one, two):
            await until_serving(proxy, 1)
            await until_leader(proxy, "f-0")
        async with (
            httpx.AsyncClient(base_url=one.url, timeout=10) as a,
            httpx.AsyncClient(base_url=two.url, timeout=10) as b,
        ):
            statuses = [(await create((a, b)[n % 2], n)).status_code for n in range(1, 13)]
            assert statuses.count(201) == 5
            assert statuses[5:] == [429] * 7
            assert node.hub.instance_count == 5
            # Concurrent creations through both proxies share the one bucket too.
            writes = [
                (a, b)[n % 2].patch("/v1/inputs/votes", json=[[f"v{n}", vote(1, "q")]])
                for n in range(12)
            ]
            assert sorted(r.status_code for r in await asyncio.gather(*writes)) == (
                [200] * 5 + [429] * 7
            )


async def test_writes_are_limited_and_the_control_token_is_not(
    config: ProxyConfig, start_node: StartNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    await start_node("f-0", role="leader")
    await set_leader(redis_client, keyspace, "f-0", 1)
    token = {"Authorization": "Bearer s3cret"}
    async with running_proxy(dataclasses.replace(config, control_token="s3cret")) as proxy:
        await until_serving(proxy, 1)
        await until_leader(proxy, "f-0")
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            # The token's holder is the operator: neither its writes nor its creations count.
            for n in range(8):
                write = await http.patch(
                    "/v1/inputs/votes", json=[[f"v{n}", vote(1, "q")]], headers=token
                )
                assert write.status_code == 200
                assert (await create(http, n + 1, **token)).status_code == 201
            # Anonymous creations still have their own five.
            statuses = [(await create(http, n)).status_code for n in range(20, 27)]
            assert statuses == [201] * 5 + [429] * 2
            # A write without the token is refused 401 first: nothing to limit.
            assert (await http.patch("/v1/inputs/votes", json=[])).status_code == 401


async def test_forwarded_for_is_believed_only_from_trusted_peers(
    config: ProxyConfig, start_node: StartNode
) -> None:
    await start_node("f-0")
    spoofed = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(12)]
    async with running_proxy(config) as proxy:  # default: no trusted forwarder
        await until_serving(proxy, 1)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            statuses = [(await create(http, n, **spoofed[n])).status_code for n in range(12)]
        assert statuses.count(429) == 7  # one client, whatever the header says
    trusting = dataclasses.replace(config, forwarded_allow_ips=("127.0.0.1",))
    async with running_proxy(trusting) as proxy:
        await until_serving(proxy, 1)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            # Twelve clients behind the trusted peer: one creation each, all allowed ...
            statuses = [(await create(http, 100 + n, **spoofed[n])).status_code for n in range(12)]
            assert statuses == [201] * 12
            # ... and one of them is still limited as itself.
            again = [(await create(http, 200 + n, **spoofed[0])).status_code for n in range(5)]
            assert again == [201] * 4 + [429]


@pytest.fixture
async def dead_redis() -> AsyncIterator[Redis]:
    redis = connect("redis://127.0.0.1:1/0", timeout_s=0.5)
    yield redis
    await redis.aclose()


async def test_without_redis_each_proxy_limits_on_its_own(dead_redis: Redis) -> None:
    healthy = True
    limiter = RateLimiter(
        dead_redis,
        Keyspace("nowhere"),
        {"streams": RateLimit(per_s=1, burst=3), "writes": RateLimit(per_s=0, burst=1)},
        redis_ok=lambda: healthy,
        clock=lambda: 100.0,
    )
    # Redis fails: the call's error sends it to the local buckets (fail open, still limited).
    verdicts = [await limiter.check("streams", "addr:192.0.2.1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert verdicts[-1].retry_after_s == pytest.approx(1.0)
    healthy = False  # membership lost Redis: it is not even tried
    assert not (await limiter.check("streams", "addr:192.0.2.1")).allowed
    assert (await limiter.check("streams", "addr:192.0.2.2")).allowed
    # A limit that is off, and a request with no client key, are never counted.
    assert all([(await limiter.check("writes", "addr:192.0.2.1")).allowed for _ in range(5)])
    assert (await limiter.check("streams", None)).allowed
    assert len(limiter.local) == 2


def test_local_buckets_stay_bounded() -> None:
    buckets = LocalBuckets(max_keys=100)
    limit = RateLimit(per_s=1, burst=2)
    for n in range(1_000):
        assert buckets.take(f"addr:{n}", limit, now_ms=float(n)).allowed
    assert len(buckets) <= 100
