"""Issue 3's multi-process tests: real `skiff leader` / `skiff follower` processes on
127.0.0.1 over a private Redis-protocol server per test."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from tests.support.cluster_services import service
from tests.support.harness import Cluster, closing_cluster
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, check_no_write_lost, vote_counts, write_votes

pytestmark = pytest.mark.timeout(150)

LEASE = ("--lease-ttl", "1.5")
KEYS = Keyspace(service.name)


@pytest_asyncio.fixture
async def redis(redis_server_factory: ServerFactory) -> AsyncIterator[str]:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    yield server.url


@pytest_asyncio.fixture
async def cluster(
    redis: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Cluster]:
    async with closing_cluster(redis, tmp_path, request) as c:
        yield c


async def test_followers_converge_with_the_leader_under_random_writes(cluster: Cluster) -> None:
    leader = await cluster.leader("L1", *LEASE)
    followers = [await cluster.follower("F1"), await cluster.follower("F2")]
    log = WriteLog()
    await asyncio.gather(
        write_votes([leader.url], log, count=60, prefix="a", seed=1),
        write_votes([f.url for f in followers], log, count=60, prefix="b", seed=2),
    )
    state = await cluster.converged([leader, *followers])
    assert state["version"] >= 120
    assert log.total_acked == 360
    for node in (leader, *followers):
        check_no_write_lost(log, await vote_counts(node.url))


async def test_a_killed_follower_restarts_and_catches_up(cluster: Cluster) -> None:
    leader = await cluster.leader("L1", *LEASE)
    follower = await cluster.follower("F1")
    log = WriteLog()
    await write_votes([leader.url], log, count=20, prefix="a")
    cluster.kill("F1")
    await write_votes([leader.url], log, count=40, prefix="b")
    await cluster.restart("F1")
    await write_votes([leader.url], log, count=10, prefix="c")
    await cluster.converged([leader, follower])
    check_no_write_lost(log, await vote_counts(follower.url))


async def test_the_standby_takes_over_a_killed_leader_without_losing_acknowledged_writes(
    cluster: Cluster,
) -> None:
    first = await cluster.leader("L1", *LEASE)
    standby = await cluster.leader("L2", *LEASE, ready=False)
    follower = await cluster.follower("F1")
    log = WriteLog()
    writer = asyncio.create_task(
        write_votes([first.url, standby.url, follower.url], log, count=150, prefix="w", pause=0.01)
    )
    await asyncio.sleep(1.0)
    killed_at = time.monotonic()
    cluster.kill("L1")
    await cluster.wait_ready(standby, within=15)
    takeover = time.monotonic() - killed_at
    await writer
    assert takeover < 5.0, f"standby took {takeover:.1f}s to take over"
    await cluster.converged([standby, follower])
    assert log.total_acked > 0
    for node in (standby, follower):
        check_no_write_lost(log, await vote_counts(node.url))


async def test_a_paused_leader_cannot_publish_after_losing_its_lease(
    cluster: Cluster, redis: str
) -> None:
    old = await cluster.leader("L1", *LEASE)
    standby = await cluster.leader("L2", *LEASE, ready=False)
    follower = await cluster.follower("F1")
    log = WriteLog()
    await write_votes([old.url], log, count=10, prefix="a")
    cluster.signal("L1", signal.SIGSTOP)
    await cluster.wait_ready(standby, within=15)
    await write_votes([standby.url], log, count=10, prefix="b")
    cluster.signal("L1", signal.SIGCONT)
    # The old leader wakes up believing it leads. Whatever it does now, it must not publish:
    # a write it takes must fail its fenced append (never a 200 of its own) or be the new
    # leader's, and it must step down.
    async with httpx.AsyncClient(timeout=5.0) as http:
        for n in range(5):
            await http.patch(f"{old.url}/v1/inputs/votes", json=[[f"stale{n}", [{"post": 1}]]])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = await http.get(f"{old.url}/healthz")
            if health.json().get("role") != "leader":
                break
            await asyncio.sleep(0.2)
        assert health.json().get("role") != "leader", health.json()
    await write_votes([standby.url], log, count=5, prefix="c")
    await cluster.converged([standby, follower])
    client = Redis.from_url(redis)
    try:
        entries = await client.xrange(KEYS.deltas)
    finally:
        await client.aclose()
    terms = [int(fields[b"term"]) for _, fields in entries]
    versions = [int(fields[b"version"]) for _, fields in entries]
    # Fencing: once a newer term published, no older term ever appears again.
    assert terms == sorted(terms), terms
    assert len(set(terms)) >= 2
    assert versions == list(range(versions[0], versions[0] + len(versions)))
    check_no_write_lost(log, await vote_counts(follower.url))


async def test_a_leader_stepping_down_refuses_no_connection(cluster: Cluster) -> None:
    """Its phases (leading, then standby) serve on sockets bound once: a client connecting
    while one server stops and the next starts waits for the next, it is never refused."""
    old = await cluster.leader("L1", *LEASE)
    standby = await cluster.leader("L2", *LEASE, ready=False)
    cluster.signal("L1", signal.SIGSTOP)
    await cluster.wait_ready(standby, within=15)
    roles: list[str] = []
    refused = 0
    # A fresh connection per request: what is measured is whether the port accepts.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
        cluster.signal("L1", signal.SIGCONT)
        deadline = time.monotonic() + 10
        settled: float | None = None
        while time.monotonic() < deadline:
            try:
                health = await http.get(f"{old.url}/healthz")
            except httpx.ConnectError:
                refused += 1
                continue
            roles.append(health.json().get("role", "?"))
            if roles[-1] != "leader" and settled is None:
                # On through the switch to the standby's server, and a little beyond.
                settled = time.monotonic()
                deadline = settled + 1.0
            await asyncio.sleep(0.005)
    assert refused == 0, f"{refused} connection(s) refused while L1 stepped down"
    assert roles and roles[-1] == "candidate", roles
    assert roles.count("leader") < len(roles)


async def test_flushall_starts_a_new_epoch_and_everyone_converges(
    cluster: Cluster, redis: str
) -> None:
    leader = await cluster.leader("L1", *LEASE)
    followers = [await cluster.follower("F1"), await cluster.follower("F2")]
    log = WriteLog()
    await write_votes([leader.url], log, count=20, prefix="a")
    before = await cluster.converged([leader, *followers])
    client = Redis.from_url(redis)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = await cluster.state(leader)
        if state["epoch"] != before["epoch"]:
            break
        await asyncio.sleep(0.2)
    await write_votes([leader.url], log, count=10, prefix="b")
    after = await cluster.converged([leader, *followers])
    assert after["epoch"] != before["epoch"]
    for node in (leader, *followers):
        check_no_write_lost(log, await vote_counts(node.url))


async def test_a_follower_paused_through_a_snapshot_and_trim_resyncs(
    cluster: Cluster, redis: str
) -> None:
    leader = await cluster.leader("L1", *LEASE, "--snapshot-every", "20")
    follower = await cluster.follower("F1")
    log = WriteLog()
    await write_votes([leader.url], log, count=10, prefix="a")
    await cluster.converged([leader, follower])
    cluster.signal("F1", signal.SIGSTOP)
    await write_votes([leader.url], log, count=80, prefix="b")
    client = Redis.from_url(redis)
    try:
        first = await client.xrange(KEYS.deltas, count=1)
        # Trimmed past the follower's position (version ~10): it cannot just read on.
        assert int(first[0][0].split(b"-")[0]) > 12
    finally:
        await client.aclose()
    cluster.signal("F1", signal.SIGCONT)
    await cluster.converged([leader, follower])
    check_no_write_lost(log, await vote_counts(follower.url))
