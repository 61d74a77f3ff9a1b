"""Several services on one Redis Cluster, and a shard's primary killed under load.

Three services whose hash tags fall in the three shards of a 3-primary, 3-replica Cluster
(`redis+cluster://`), each with its own leader candidates and follower, and one proxy serving
them all, each under `/<service>/` (proxy/services.py). Writers and SSE readers on every
service, through that proxy; kill -9 of the primary of one service's shard: that service's
writes pause until the Cluster promotes the replica, the others' do not; every service
converges with every acknowledged write (`--durability replica`) on its nodes and in its
readers' final state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from broker.store.keyspace import Keyspace
from tests.support.failover import LoadRun, check_everywhere, leader_of, under_load
from tests.support.harness import Cluster, Proc
from tests.support.redis_topologies import ValkeyCluster

pytestmark = [pytest.mark.timeout(300), pytest.mark.failover]

SERVICES = ("alpha", "delta", "beta")
LEADER_ARGS = ("--lease-ttl", "1.5", "--durability", "replica", "--durability-timeout", "500")
#: Stated bounds (docs/reliability.md): the killed shard's service writes again within
#: WRITES_RESUME_S; the other services never go longer than UNAFFECTED_S without an ack.
WRITES_RESUME_S = 15.0
UNAFFECTED_S = 2.0


@pytest_asyncio.fixture
async def valkey_cluster() -> AsyncIterator[ValkeyCluster]:
    async with ValkeyCluster() as servers:
        yield servers


@pytest_asyncio.fixture
async def clusters(
    valkey_cluster: ValkeyCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, Cluster]]:
    made = {}
    for name in SERVICES:
        (tmp_path / name).mkdir()
        made[name] = Cluster(
            valkey_cluster.url, tmp_path / name, service=f"tests.support.cluster_services:{name}"
        )
    try:
        yield made
    finally:
        failed = getattr(request.node, "rep_call", None)
        for cluster in made.values():
            await cluster.close(show_logs=failed is None or failed.failed)


def leaders(name: str) -> tuple[str, ...]:
    return (f"{name}-L1", f"{name}-L2")


async def start(cluster: Cluster, name: str) -> list[Proc]:
    await cluster.leader(f"{name}-L1", *LEADER_ARGS)
    await cluster.leader(f"{name}-L2", *LEADER_ARGS, ready=False)
    return [await cluster.follower(f"{name}-F1")]


async def test_a_shard_failover_interrupts_only_the_services_on_that_shard(
    valkey_cluster: ValkeyCluster, clusters: dict[str, Cluster]
) -> None:
    primaries = {n: (await valkey_cluster.primary_of(Keyspace(n).meta)).port for n in SERVICES}
    assert len(set(primaries.values())) == 3, f"the services share a shard: {primaries}"
    started = {name: await start(clusters[name], name) for name in SERVICES}
    services = [arg for name in SERVICES for arg in ("--service", name)]
    proxy = await clusters[SERVICES[0]].proxy("proxy", *services)
    victim = SERVICES[0]
    done = asyncio.Event()

    async def kill_victim_shard() -> None:
        key = Keyspace(victim).meta
        old = await valkey_cluster.kill_primary_of(key)
        await valkey_cluster.wait_failover(key, old)
        # Restarted, as a supervisor would: it rejoins as the new primary's replica, and
        # `replica` durability can be met again.
        await old.start()
        done.set()

    def settle(name: str) -> Callable[[], Awaitable[None]]:
        async def converged() -> None:
            cluster = clusters[name]
            leader = await leader_of(cluster, leaders(name))
            follower = cluster.procs[f"{name}-F1"]
            await cluster.converged([leader, follower], within=30)

        return converged

    async def load(name: str) -> LoadRun:
        fault = kill_victim_shard if name == victim else done.wait
        return await under_load(
            [f"{proxy.url}/{name}"], fault, settle=settle(name), before_s=2.0, after_s=5.0,
            name=name,
        )  # fmt: skip

    runs = dict(zip(SERVICES, await asyncio.gather(*(load(n) for n in SERVICES)), strict=True))
    for name, run in runs.items():
        await check_everywhere(run, clusters[name], started[name], leaders(name))
    outages = {name: run.writer_outage_s() for name, run in runs.items()}
    readers = {name: run.reader_outage_s() for name, run in runs.items()}
    print(f"cluster failover of {victim}'s shard: writers' gaps {outages}, readers' {readers}")
    assert outages[victim] < WRITES_RESUME_S
    for name in SERVICES[1:]:
        assert outages[name] < UNAFFECTED_S, (name, outages)
        assert readers[name] < UNAFFECTED_S, (name, readers)
