"""Redis as production runs it: kill -9 of the Redis primary under load, real processes.

Sentinel (a primary, a replica, three Sentinels): two leader candidates, two followers and the
proxy on `redis+sentinel://`; writers with Idempotency-Keys and SSE readers through the proxy.
The replica is cut off first, so the primary takes writes the replica never receives, then the
primary is killed and the Sentinels promote the stale replica:

- `--durability replica`: those writes were never acknowledged (503, retried by the writers
  with their key): every acknowledged write is in the leader, every follower and every
  reader's final state; writes resume within WRITES_RESUME_S.
- `--durability none`: they were acknowledged and Redis lost them; the leader detects it
  (log, `skiff_redis_lost_history`), republishes them under a new epoch, and every node and
  reader converges on a state that has all of them.

The Cluster runs (three services on three shards, `make failover`) are in
test_redis_cluster_failover.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.failover import LoadRun, check_everywhere, leader_of, under_load
from tests.support.harness import Cluster, Proc, closing_cluster, metric
from tests.support.redis_topologies import SentinelSet

pytestmark = pytest.mark.timeout(240)

LEADER_ARGS = ("--lease-ttl", "1.5", "--durability-timeout", "500")
LEADERS = ("L1", "L2")
#: Stated bound (docs/reliability.md): from the kill to writes acknowledged again.
WRITES_RESUME_S = 15.0


@pytest_asyncio.fixture
async def sentinel() -> AsyncIterator[SentinelSet]:
    async with SentinelSet() as servers:
        yield servers


@pytest_asyncio.fixture
async def cluster(
    sentinel: SentinelSet, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Cluster]:
    async with closing_cluster(sentinel.url, tmp_path, request) as c:
        yield c


async def run_sentinel_failover(
    sentinel: SentinelSet, cluster: Cluster, durability: str
) -> tuple[LoadRun, list[Proc]]:
    args = (*LEADER_ARGS, "--durability", durability)
    await cluster.leader("L1", *args)
    await cluster.leader("L2", *args, ready=False)
    followers = [await cluster.follower("F1"), await cluster.follower("F2")]
    proxy = await cluster.proxy()

    async def fault() -> None:
        await sentinel.cut_replication()
        await asyncio.sleep(0.8)  # writes the replica will never receive
        old = await sentinel.kill_primary()
        await sentinel.wait_failover(old)
        # Restarted, as a supervisor would: the Sentinels make it the new primary's replica,
        # and `replica` durability can be met again.
        await old.start()

    async def settle() -> None:
        leader = await leader_of(cluster, LEADERS)
        await cluster.converged([leader, *followers], within=30)

    run = await under_load([proxy.url], fault, settle=settle, before_s=2.0, after_s=6.0)
    return run, [*followers, proxy]


async def test_sentinel_failover_with_replica_durability_loses_no_acknowledged_write(
    sentinel: SentinelSet, cluster: Cluster
) -> None:
    run, procs = await run_sentinel_failover(sentinel, cluster, "replica")
    await check_everywhere(run, cluster, procs, LEADERS)
    assert sum(run.acked_votes().values()) > 0
    outage = run.writer_outage_s()
    print(f"replica durability: writers saw {outage:.2f} s without an acknowledgement, "
          f"readers {run.reader_outage_s():.2f} s")  # fmt: skip
    assert outage < WRITES_RESUME_S


async def test_sentinel_failover_without_durability_republishes_what_redis_lost(
    sentinel: SentinelSet, cluster: Cluster
) -> None:
    run, procs = await run_sentinel_failover(sentinel, cluster, "none")
    leader = await check_everywhere(run, cluster, procs, LEADERS)
    text = (await cluster.http.get(leader.url + "/metrics")).text
    lost = metric(text, "skiff_redis_lost_history_total")
    logs = "".join(p.log.read_text(errors="replace") for p in cluster.procs.values())
    assert lost >= 1, "Redis lost acknowledged versions and nobody noticed"
    assert "were lost" in logs
    outage = run.writer_outage_s()
    print(f"no durability: lost history detected {lost:.0f}x; writers saw {outage:.2f} s "
          f"without an acknowledgement, readers {run.reader_outage_s():.2f} s")  # fmt: skip
    assert outage < WRITES_RESUME_S
