"""Many distinct instances: up to 10,000 resource instances with different params, each with one
SSE reader — memory, creation rate, and write→SSE latency as the number of live instances grows.

    .venv/bin/python -m bench.instances_bench --counts 10,100,1000,10000
    .venv/bin/python -m bench.instances_bench --via proxy      # a follower behind proxies

Instance i is `probe {"key": i}` over the items service; each has one SSE subscriber. After each
count is reached, writes set one random live instance's item to `{"seq": n}`; its subscriber
alone must see it. The figures at the last count are the headline (creation rate over all of
them, RSS per instance, write→SSE p50/p99); `curve` has p50/p99 at every count.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from bench.endpoints import Endpoint, rss_bytes
from bench.fanout_bench import create_streams
from bench.http_bench import pct
from bench.report import print_table, write_json
from bench.subscribers import SubscriberPool

COUNTS = (10, 100, 1_000, 10_000)


class Readers:
    """One SSE subscriber per stream, spread over one or several endpoints (several proxies in
    front of one follower: a proxy process cannot relay 10,000 streams under this machine's
    20,000-descriptor limit, two descriptors each)."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self._endpoints = endpoints
        self._pools = [SubscriberPool(e.host, e.stream_port) for e in endpoints]

    async def add(self, ids: Sequence[str]) -> None:
        n = len(self._pools)
        for i, (pool, endpoint) in enumerate(zip(self._pools, self._endpoints, strict=True)):
            await pool.add([endpoint.stream_path(s) for s in ids[i::n]])

    def expect(self, marker: bytes) -> None:
        for pool in self._pools:
            pool.expect(marker, want=1)

    async def first_arrival(self, wait_s: float = 30) -> float:
        """When the subscriber of the write armed by `expect` received it (one pool has it)."""
        waits = {asyncio.create_task(pool.arrivals(wait_s=wait_s)) for pool in self._pools}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return min(task.result()[0] for task in done)

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


async def _writes(
    writes_to: Endpoint, readers: Readers, live: int, writes: int, seq: int
) -> list[float]:
    rng = random.Random(3 + live)
    writer = await writes_to.control()
    latency = []
    try:
        for n in range(seq, seq + writes):
            key = rng.randrange(live)
            readers.expect(b'"seq":%d}' % n)
            start = time.perf_counter()
            body = orjson.dumps([[key, [{"seq": n}]]])
            resp = await writer.request("PATCH", "/v1/inputs/items", body)
            assert resp.status == 200, resp
            latency.append(await readers.first_arrival() - start)
            await asyncio.sleep(0.01)
    finally:
        await writer.close()
    return latency


async def many_instances(
    streams: Endpoint,
    writes_to: Endpoint,
    counts: Sequence[int],
    writes: int,
    *,
    readers_at: Sequence[Endpoint] = (),
) -> dict[str, Any]:
    """Instances up to each of `counts` (ascending), created at `streams` and read there (or
    spread over `readers_at`), `writes` timed writes at each count; RSS of `streams.pids`
    recorded after each step."""
    readers = Readers(readers_at or [streams])
    rss_curve: list[dict[str, Any]] = [
        {"streams": 0, "rss_bytes": {r: rss_bytes(p) for r, p in streams.pids.items()}}
    ]
    curve: list[dict[str, Any]] = []
    create_s = 0.0
    done = 0
    latency: list[float] = []
    try:
        for target in counts:
            params = [{"key": i} for i in range(done, target)]
            t0 = time.perf_counter()
            ids = await create_streams(streams, params)
            create_s += time.perf_counter() - t0
            await readers.add(ids)
            done = target
            await asyncio.sleep(0.5)
            rss = {r: rss_bytes(p) for r, p in streams.pids.items()}
            rss_curve.append({"streams": done, "rss_bytes": rss})
            latency = await _writes(writes_to, readers, done, writes, seq=len(curve) * writes)
            curve.append(
                {
                    "instances": done,
                    "latency_p50_ms": statistics.median(latency) * 1e3,
                    "latency_p99_ms": pct(latency, 0.99) * 1e3,
                }
            )
    finally:
        readers.close()
    base, top = rss_curve[0]["rss_bytes"], rss_curve[-1]["rss_bytes"]
    return {
        "instances": done,
        "creation_per_s": done / create_s,
        "rss_curve": rss_curve,
        "rss_per_instance_bytes": {r: (top[r] - base[r]) / done for r in base},
        "curve": curve,
        "latency_ms": [x * 1e3 for x in latency],
        "latency_p50_ms": curve[-1]["latency_p50_ms"],
        "latency_p99_ms": curve[-1]["latency_p99_ms"],
    }


#: Proxies in front of the follower when streams are read through them (see Readers).
PROXIES = 2


async def on_cluster(counts: Sequence[int], writes: int, *, via_proxy: bool) -> dict[str, Any]:
    """On a follower (streams read directly, writes to the leader) or behind proxies (streams
    created, read and written through them); RSS is the follower's (and the first proxy's)."""
    from bench.cluster import cluster

    keys = max(counts)
    proxies = PROXIES if via_proxy else 0
    async with cluster("bench.workloads:items", "bench-items", keys, proxies=proxies) as c:
        pids = {"node": c.pids["follower1"]}
        if via_proxy:
            first = replace(c.proxies[0], pids={**pids, "proxy": c.pids["proxy"]})
            return await many_instances(first, first, counts, writes, readers_at=c.proxies)
        follower = replace(c.followers[0], pids=pids)
        return await many_instances(follower, c.leader, counts, writes)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from bench.cluster import serve

    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--writes", type=int, default=100, help="timed writes at each count")
    parser.add_argument("--via", choices=["node", "follower", "proxy"], default="follower")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.counts.split(",")]

    if args.via == "node":
        with serve("bench.workloads:items", max(counts)) as node:
            result = asyncio.run(many_instances(node, node, counts, args.writes))
    else:
        result = asyncio.run(on_cluster(counts, args.writes, via_proxy=args.via == "proxy"))
    n = result["instances"]
    print_table(
        f"{n:,} instances ({args.via})",
        [
            ("creation (instances/s)", f"{result['creation_per_s']:,.0f}"),
            ("RSS per instance (KB)", f"{result['rss_per_instance_bytes']['node'] / 1e3:.1f}"),
            *(
                (
                    f"{p['instances']:,} live: write→SSE p50 / p99 (ms)",
                    f"{p['latency_p50_ms']:.2f} / {p['latency_p99_ms']:.2f}",
                )
                for p in result["curve"]
            ),
        ],
    )
    write_json("instances", result)
    return result


if __name__ == "__main__":
    main()
