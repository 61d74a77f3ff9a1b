"""Replication benchmarks: follower bootstrap time, replication lag under load, write→SSE
latency through a follower, and Redis memory per retained version.

    .venv/bin/python -m bench.replication_bench --keys 1000000

Runs an embedded Valkey, a `skiff leader` holding `--keys` items of ~100 bytes
(bench.workloads:items) and `skiff follower` processes, all on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from bench.procs import skiff, wait_ready
from bench.rawhttp import RawConnection, SseReader
from bench.report import print_table, write_json
from bench.workloads import item_value
from broker.store.keyspace import Keyspace
from skiff.dev.embedded_redis import EmbeddedRedis, free_port

KEYS = Keyspace("bench-items")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def bootstrap_seconds(redis_url: str, trials: int) -> list[float]:
    """Process start to /healthz 200 of a fresh follower (snapshot load + stream catch-up)."""
    times = []
    for _ in range(trials):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        with skiff(
            "follower",
            "bench.workloads:items",
            "--redis",
            redis_url,
            "--port",
            str(port),
            "--node-id",
            f"boot-{port}",
            env={"SKIFF_BENCH_KEYS": "0"},
        ):
            wait_ready(url, timeout=300)
            times.append(time.perf_counter() - start)
    return times


async def lag(
    leader: int, follower: int, keys: int, rate: int, batch: int, seconds: float
) -> list[float]:
    """Key updates at `rate`/s in `batch`-key PATCHes to the leader; each batch also sets the
    probe key 0, whose update on the follower's SSE stream marks the batch's arrival."""
    conn = await RawConnection.open("127.0.0.1", follower)
    created = await conn.request("POST", "/v1/streams/probe", b'{"key": 0}')
    assert created.status == 201, created
    await conn.close()
    sse = await SseReader.open("127.0.0.1", follower, f"/v1/streams/{created.body.decode()}")
    assert (await sse.event())[0] == "init"
    sent: dict[int, float] = {}
    lags: list[float] = []

    async def receive() -> None:
        while True:
            kind, _, data = await sse.event()
            if kind != "update" or data == b"[]":
                continue
            now = time.perf_counter()
            for _key, values in orjson.loads(data):
                seq = values[0]["seq"] if values else None
                if seq in sent:
                    lags.append(now - sent.pop(seq))

    receiver = asyncio.create_task(receive())
    writer = await RawConnection.open("127.0.0.1", leader)
    rng = random.Random(7)
    interval = batch / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        entries: list[Any] = [[0, [{"seq": n}]]]
        for _ in range(batch - 1):
            i = rng.randrange(1, keys)
            entries.append([i, [item_value(i) | {"v": n}]])
        sent[n] = time.perf_counter()
        response = await writer.request("PATCH", "/v1/inputs/items", orjson.dumps(entries))
        assert response.status == 200, response
        n += 1
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(1.0)
    receiver.cancel()
    await writer.close()
    await sse.conn.close()
    return lags


async def stream_memory(redis_url: str) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    try:
        out: dict[str, float] = {}
        for name, key in (("deltas", KEYS.deltas), ("inputs", KEYS.inputs)):
            length = await redis.xlen(key)
            used = await redis.memory_usage(key, samples=0) or 0
            out[f"{name}_entries"] = length
            out[f"{name}_bytes_per_version"] = used / length if length else 0.0
        return out
    finally:
        await redis.aclose()


async def bootstrap_curve(sizes: list[int], trials: int) -> list[dict[str, Any]]:
    """Follower bootstrap time (median of `trials`) for each state size, one leader per size."""
    from bench.cluster import cluster

    rows = []
    for size in sizes:
        async with cluster("bench.workloads:items", "bench-items", size, followers=0) as c:
            boot = await asyncio.to_thread(bootstrap_seconds, c.redis_url, trials)
        rows.append({"keys": size, "bootstrap_s": boot, "median_s": statistics.median(boot)})
    return rows


async def lag_curve(keys: int, rates: list[int], seconds: float) -> dict[str, Any]:
    """Write→SSE through a follower at a trickle, then replication lag at each key rate."""
    from bench.cluster import cluster

    out: dict[str, Any] = {"keys": keys, "rates": {}}
    async with cluster("bench.workloads:items", "bench-items", keys, followers=1) as c:
        lport, fport = c.leader.control_port, c.followers[0].control_port
        single = await lag(lport, fport, keys, rate=50, batch=1, seconds=seconds / 2)
        out["write_sse_via_follower_ms"] = [x * 1e3 for x in single]
        for rate in rates:
            lags = await lag(lport, fport, keys, rate=rate, batch=100, seconds=seconds)
            out["rates"][str(rate)] = [x * 1e3 for x in lags]
        out["redis"] = await stream_memory(c.redis_url)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bootstrap-trials", type=int, default=3)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"keys": args.keys}

    async def run() -> None:
        async with EmbeddedRedis() as server:
            lport, fport = free_port(), free_port()
            # Snapshots only at start-up (so the bootstrap loads the whole state from one) and
            # no trimming during the run (so retained versions can be measured).
            with skiff(
                "leader",
                "bench.workloads:items",
                "--redis",
                server.url,
                "--port",
                str(lport),
                "--node-id",
                "bench-leader",
                "--snapshot-every",
                "100000000",
                env={"SKIFF_BENCH_KEYS": str(args.keys)},
            ):
                await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{lport}", 600)
                boot = await asyncio.to_thread(bootstrap_seconds, server.url, args.bootstrap_trials)
                result["bootstrap_s"] = boot
                with skiff(
                    "follower",
                    "bench.workloads:items",
                    "--redis",
                    server.url,
                    "--port",
                    str(fport),
                    "--node-id",
                    "bench-follower",
                    env={"SKIFF_BENCH_KEYS": "0"},
                ):
                    await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{fport}", 600)
                    single = await lag(
                        lport, fport, args.keys, rate=50, batch=1, seconds=args.seconds / 2
                    )
                    result["write_sse_via_follower_ms"] = [x * 1e3 for x in single]
                    for rate in (1000, 10000):
                        lags = await lag(
                            lport, fport, args.keys, rate=rate, batch=100, seconds=args.seconds
                        )
                        result[f"lag_{rate}_ms"] = [x * 1e3 for x in lags]
                result["redis"] = await stream_memory(server.url)
                async with httpx.AsyncClient() as http:
                    metrics = (await http.get(f"http://127.0.0.1:{lport}/metrics")).text
                result["leader_metrics_sample"] = metrics[:2000]

    asyncio.run(run())
    rows = [
        ("state keys (~100 B values)", f"{args.keys:,}"),
        ("follower bootstrap, median (s)", f"{statistics.median(result['bootstrap_s']):.2f}"),
        (
            "write→SSE via follower p50 (ms)",
            f"{statistics.median(result['write_sse_via_follower_ms']):.2f}",
        ),
        (
            "write→SSE via follower p99 (ms)",
            f"{pct(result['write_sse_via_follower_ms'], 0.99):.2f}",
        ),
    ]
    for rate in (1000, 10000):
        lags = result[f"lag_{rate}_ms"]
        rows.append((f"lag at {rate:,} keys/s p50 (ms)", f"{statistics.median(lags):.2f}"))
        rows.append((f"lag at {rate:,} keys/s p99 (ms)", f"{pct(lags, 0.99):.2f}"))
    redis = result["redis"]
    rows.append(("Redis bytes/version, deltas", f"{redis['deltas_bytes_per_version']:,.0f}"))
    rows.append(("Redis bytes/version, input log", f"{redis['inputs_bytes_per_version']:,.0f}"))
    print_table("replication", rows)
    summary = {k: v for k, v in result.items() if k != "leader_metrics_sample"}
    write_json("replication", summary)
    return summary


if __name__ == "__main__":
    main()
