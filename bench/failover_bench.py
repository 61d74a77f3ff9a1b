"""Redis as production runs it: what `--durability` costs a write, and what writers and SSE
clients see while Redis fails over.

    .venv/bin/python -m bench.failover_bench [--writes 500] [--trials 3]

- write latency, sequential PATCHes to the leader (`skiff leader` over `redis+sentinel://`, a
  primary with one replica and three Sentinels), p50/p99 per setting: `none` and `replica`
  without persistence, `none` and `aof` with `appendonly yes, appendfsync always` on both;
- Sentinel failover: a leader, a standby, a follower and the proxy; two writers with
  Idempotency-Keys and three SSE readers through the proxy; kill -9 of the primary, the
  Sentinels promote the replica, the old primary is restarted as a supervisor would (it rejoins
  as a replica). Per trial: time to promotion, writers' longest time without an acknowledgement,
  readers' longest time without an event; for `none`, `replica` with one replica (writes wait
  for the restarted primary to rejoin) and `replica` with two;
- Cluster failover: three services on a 3-shard Cluster (one replica each), the same clients
  per service, kill -9 of one shard's primary (restarted after the promotion): the same
  figures for the service on that shard, and the worst of the two others.

Uses the test suite's real-server fixtures (tests/support/redis_topologies.py, harness.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.report import print_table, write_json
from broker.store.keyspace import Keyspace
from tests.support.failover import LoadRun, leader_of, under_load
from tests.support.harness import Cluster
from tests.support.redis_topologies import SentinelSet, ValkeyCluster

LEASE = ("--lease-ttl", "1.5")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def write_latency(
    durability: tuple[str, ...], aof: bool, writes: int, tmp: Path
) -> dict[str, float]:
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
    async with SentinelSet(appendonly=aof, appendfsync="always") as servers:
        async with Cluster(servers.url, tmp) as cluster:
            leader = await cluster.leader("L1", *LEASE, *durability)
            times = []
            async with httpx.AsyncClient(base_url=leader.url, timeout=10) as http:
                for i in range(writes + 5):
                    body = [[f"v{i}", [{"post": i % 20}]]]
                    started = time.perf_counter()
                    response = await http.patch("/v1/inputs/votes", json=body)
                    elapsed = time.perf_counter() - started
                    response.raise_for_status()
                    if i >= 5:  # warm-up
                        times.append(elapsed * 1000)
    return {
        "p50_ms": pct(times, 0.5),
        "p99_ms": pct(times, 0.99),
        "mean_ms": statistics.mean(times),
        "writes": len(times),
    }


def figures(run: LoadRun, promoted_s: float) -> dict[str, float]:
    return {
        "promotion_s": round(promoted_s, 2),
        "writers_outage_s": round(run.writer_outage_s(), 2),
        "readers_outage_s": round(run.reader_outage_s(), 2),
        "acked_batches": sum(len(w.acked) for w in run.writers),
    }


async def sentinel_trial(durability: str, replicas: int, tmp: Path) -> dict[str, float]:
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
    async with SentinelSet(replicas=replicas) as servers, Cluster(servers.url, tmp) as cluster:
        args = (*LEASE, "--durability", durability, "--durability-timeout", "500")
        await cluster.leader("L1", *args)
        await cluster.leader("L2", *args, ready=False)
        follower = await cluster.follower("F1")
        proxy = await cluster.proxy()
        promoted = 0.0

        async def fault() -> None:
            nonlocal promoted
            started = time.monotonic()
            old = await servers.kill_primary()
            await servers.wait_failover(old)
            promoted = time.monotonic() - started
            await old.start()

        async def settle() -> None:
            leader = await leader_of(cluster, ("L1", "L2"))
            await cluster.converged([leader, follower])

        run = await under_load([proxy.url], fault, settle=settle, before_s=2.0, after_s=8.0)
        return figures(run, promoted)


async def cluster_trial(tmp: Path) -> dict[str, Any]:
    names = ("alpha", "delta", "beta")
    async with ValkeyCluster() as servers:
        clusters = {}
        proxies = {}
        try:
            for name in names:
                (tmp / name).mkdir(parents=True, exist_ok=True)
                c = clusters[name] = Cluster(
                    servers.url, tmp / name, service=f"tests.support.cluster_services:{name}"
                )
                args = (*LEASE, "--durability", "replica", "--durability-timeout", "500")
                await c.leader(f"{name}-L1", *args)
                await c.leader(f"{name}-L2", *args, ready=False)
                await c.follower(f"{name}-F1")
                proxies[name] = await c.proxy(f"{name}-proxy", "--service", name)
            done = asyncio.Event()
            promoted = 0.0

            async def kill() -> None:
                nonlocal promoted
                key = Keyspace(names[0]).meta
                started = time.monotonic()
                old = await servers.kill_primary_of(key)
                await servers.wait_failover(key, old)
                promoted = time.monotonic() - started
                await old.start()
                done.set()

            def load(name: str) -> Awaitable[LoadRun]:
                fault: Callable[[], Awaitable[Any]] = kill if name == names[0] else done.wait
                return under_load([proxies[name].url], fault, before_s=2.0, after_s=8.0, name=name)

            runs = await asyncio.gather(*(load(n) for n in names))
        finally:
            for c in clusters.values():
                await c.close()
    victim = figures(runs[0], promoted)
    others = [figures(r, promoted) for r in runs[1:]]
    return {
        "victim": victim,
        "others_writers_outage_s": max(o["writers_outage_s"] for o in others),
        "others_readers_outage_s": max(o["readers_outage_s"] for o in others),
    }


def summary(trials: list[dict[str, float]], key: str) -> str:
    values = [t[key] for t in trials]
    return f"{statistics.median(values):.2f} (max {max(values):.2f})"


async def run(writes: int, trials: int) -> dict[str, Any]:
    result: dict[str, Any] = {"writes": writes, "trials": trials}
    with tempfile.TemporaryDirectory(prefix="skiff-failover-bench-") as scratch:
        tmp = Path(scratch)
        latency = {}
        # WAITAOF with replicas waits for the replica's once-a-second fsync report (Valkey
        # 8.1): about 1 s a write, so that setting gets fewer writes and a longer timeout.
        for label, durability, aof, count in (
            ("none", ("--durability", "none"), False, writes),
            ("replica (WAIT 1)", ("--durability", "replica"), False, writes),
            ("none, AOF always", ("--durability", "none"), True, writes),
            (
                "aof, 0 replicas (WAITAOF 1 0), AOF always",
                ("--durability", "aof", "--durability-replicas", "0"),
                True,
                writes,
            ),
            (
                "aof (WAITAOF 1 1), AOF always",
                ("--durability", "aof", "--durability-timeout", "3000"),
                True,
                min(writes, 30),
            ),
        ):
            scratch_dir = tmp / f"lat-{len(latency)}"
            latency[label] = await write_latency(durability, aof, count, scratch_dir)
        result["write_latency_ms"] = latency
        sentinel = {}
        for label, durability, replicas in (
            ("none", "none", 1),
            ("replica", "replica", 1),
            ("replica, 2 replicas", "replica", 2),
        ):
            sentinel[label] = [
                await sentinel_trial(durability, replicas, tmp / f"s-{len(sentinel)}-{i}")
                for i in range(trials)
            ]
        result["sentinel_failover"] = sentinel
        result["cluster_failover"] = [await cluster_trial(tmp / f"c-{i}") for i in range(trials)]
    rows = [
        (f"write p50 / p99 (ms), {label}", f"{v['p50_ms']:.2f} / {v['p99_ms']:.2f}")
        for label, v in latency.items()
    ]
    for durability, ts in sentinel.items():
        rows += [
            (f"sentinel {durability}: promotion (s)", summary(ts, "promotion_s")),
            (f"sentinel {durability}: writers' outage (s)", summary(ts, "writers_outage_s")),
            (f"sentinel {durability}: readers' outage (s)", summary(ts, "readers_outage_s")),
        ]
    victims = [t["victim"] for t in result["cluster_failover"]]
    rows += [
        ("cluster: promotion (s)", summary(victims, "promotion_s")),
        ("cluster, its shard: writers' outage (s)", summary(victims, "writers_outage_s")),
        ("cluster, its shard: readers' outage (s)", summary(victims, "readers_outage_s")),
        (
            "cluster, other shards: writers' outage (s)",
            summary(result["cluster_failover"], "others_writers_outage_s"),
        ),
        (
            "cluster, other shards: readers' outage (s)",
            summary(result["cluster_failover"], "others_readers_outage_s"),
        ),
    ]
    print_table("Redis failover: durability cost and outage (median of trials, max)", rows)
    print(f"\nresults: {write_json('failover', result)}")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.writes, args.trials))


if __name__ == "__main__":
    main()
