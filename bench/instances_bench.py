"""Many distinct instances: 10,000 resource instances with different params on one server —
memory, creation rate, and write→SSE latency with all of them live.

    .venv/bin/python -m bench.instances_bench --instances 10000

Instance i is `probe {"key": i}` over the items service; each has one SSE subscriber. A write
sets one random item to `{"seq": n}`; its instance's subscriber alone must see it."""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import orjson

from bench.endpoints import Endpoint, rss_bytes
from bench.fanout_bench import create_streams
from bench.http_bench import pct
from bench.report import print_table, write_json
from bench.subscribers import SubscriberPool


async def many_instances(
    streams: Endpoint, writes_to: Endpoint, instances: int, writes: int, steps: int = 4
) -> dict[str, Any]:
    """Adds instances in `steps` equal steps, recording RSS (of `streams.pids`) after each."""
    pool = SubscriberPool(streams.host, streams.stream_port)
    rss_curve: list[dict[str, Any]] = [
        {"streams": 0, "rss_bytes": {r: rss_bytes(p) for r, p in streams.pids.items()}}
    ]
    create_s = 0.0
    done = 0
    try:
        for step in range(1, steps + 1):
            target = instances * step // steps
            params = [{"key": i} for i in range(done, target)]
            t0 = time.perf_counter()
            ids = await create_streams(streams, params)
            create_s += time.perf_counter() - t0
            await pool.add([streams.stream_path(i) for i in ids])
            done = target
            await asyncio.sleep(0.5)
            rss = {r: rss_bytes(p) for r, p in streams.pids.items()}
            rss_curve.append({"streams": done, "rss_bytes": rss})
        rng = random.Random(3)
        writer = await writes_to.control()
        latency = []
        for n in range(writes):
            key = rng.randrange(instances)
            pool.expect(b'"seq":%d}' % n, want=1)
            start = time.perf_counter()
            body = orjson.dumps([[key, [{"seq": n}]]])
            resp = await writer.request("PATCH", "/v1/inputs/items", body)
            assert resp.status == 200, resp
            arrivals = await pool.arrivals(wait_s=30)
            latency.append(arrivals[0] - start)
            await asyncio.sleep(0.01)
        await writer.close()
    finally:
        pool.close()
    base, top = rss_curve[0]["rss_bytes"], rss_curve[-1]["rss_bytes"]
    return {
        "instances": instances,
        "creation_per_s": instances / create_s,
        "rss_curve": rss_curve,
        "rss_per_instance_bytes": {r: (top[r] - base[r]) / instances for r in base},
        "latency_ms": [x * 1e3 for x in latency],
        "latency_p50_ms": statistics.median(latency) * 1e3,
        "latency_p99_ms": pct(latency, 0.99) * 1e3,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.cluster import cluster

    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args(argv)

    async def run() -> dict[str, Any]:
        async with cluster("bench.workloads:items", "bench-items", args.instances) as c:
            return await many_instances(c.followers[0], c.leader, args.instances, args.writes)

    result = asyncio.run(run())
    print_table(
        "10,000 instances on one follower",
        [
            ("instances", f"{args.instances:,}"),
            ("creation (instances/s)", f"{result['creation_per_s']:,.0f}"),
            ("RSS per instance (KB)", f"{result['rss_per_instance_bytes']['node'] / 1e3:.1f}"),
            ("write→SSE p50 (ms)", f"{result['latency_p50_ms']:.2f}"),
            ("write→SSE p99 (ms)", f"{result['latency_p99_ms']:.2f}"),
        ],
    )
    write_json("instances", result)
    return result


if __name__ == "__main__":
    main()
