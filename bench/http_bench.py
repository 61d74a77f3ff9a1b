"""Single-node HTTP benchmarks: ingest throughput and write→SSE latency on loopback.

    .venv/bin/python -m bench.http_bench --keys 1000000

A `skiff serve bench.workloads:wide` process holds the map→reduce→map→take(10) graph; one SSE
subscriber follows a live take(10) resource throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.endpoints import Endpoint
from bench.procs import skiff
from bench.report import print_table, write_json
from bench.workloads import GROUPS
from skiff.dev.embedded_redis import free_port


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


Entries = list[list[Any]]


async def write_to_sse(
    endpoint: Endpoint,
    resource: str,
    params: Any,
    collection: str,
    make_write: Callable[[int], Entries],
    writes: int,
) -> list[float]:
    """Seconds from sending write n (`make_write(n)`, which must change the resource) to reading
    the SSE update it causes, for n in range(writes)."""
    sse = await endpoint.subscribe(resource, params)
    conn = await endpoint.control()
    samples = []
    for n in range(writes):
        body = orjson.dumps(make_write(n))
        t0 = time.perf_counter()
        conn.send("PATCH", f"/v1/inputs/{collection}", body)
        while True:
            kind, _, data = await asyncio.wait_for(sse.event(), 10)
            if kind == "update" and data != b"[]":
                break
        samples.append(time.perf_counter() - t0)
        resp = await conn.response()
        assert resp.status == 200, resp
    await conn.close()
    await sse.conn.close()
    return samples


async def ingest(
    endpoint: Endpoint,
    resource: str,
    params: Any,
    collection: str,
    make_batch: Callable[[random.Random], Entries],
    seconds: float,
    conns: int,
) -> dict[str, Any]:
    """Key updates/s from `conns` connections PATCHing `make_batch(rng)` back to back for
    `seconds`, while one subscriber follows the live resource."""
    sse = await endpoint.subscribe(resource, params)
    updates = 0

    async def follow() -> None:
        nonlocal updates
        while True:
            await sse.event()
            updates += 1

    follower = asyncio.create_task(follow())
    written = 0
    deadline = time.perf_counter() + seconds

    async def writer(seed: int) -> None:
        nonlocal written
        rng = random.Random(seed)
        conn = await endpoint.control()
        while time.perf_counter() < deadline:
            entries = make_batch(rng)
            resp = await conn.request("PATCH", f"/v1/inputs/{collection}", orjson.dumps(entries))
            assert resp.status == 200, resp
            written += len(entries)
        await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(writer(s) for s in range(conns)))
    elapsed = time.perf_counter() - start
    follower.cancel()
    await sse.conn.close()
    return {"keys_per_s": written / elapsed, "sse_updates": updates, "seconds": elapsed}


def wide_top_write(n: int) -> Entries:
    """Raises one group's total past all others (strictly increasing by more than any group
    total differs), so the written group becomes the new first entry of the top 10 every time."""
    key = n % 50
    return [[key, [{"g": key % GROUPS, "v": 10**9 + n * 10**7}]]]


def wide_batch(keys: int, batch: int) -> Callable[[random.Random], Entries]:
    def make(rng: random.Random) -> Entries:
        entries = []
        for _ in range(batch):
            i = rng.randrange(keys)
            entries.append([i, [{"g": i % GROUPS, "v": rng.randrange(10**6)}]])
        return entries

    return make


async def wide_figures(
    endpoint: Endpoint, keys: int, writes: int, seconds: float, batch: int, conns: int
) -> dict[str, Any]:
    """The wide graph's write→SSE latency samples and ingest throughput on one endpoint."""
    top = {"limit": 10}
    lat = await write_to_sse(endpoint, "top", top, "events", wide_top_write, writes)
    thr = await ingest(endpoint, "top", top, "events", wide_batch(keys, batch), seconds, conns)
    return {
        "latency_ms": [x * 1e3 for x in lat],
        "latency_p50_ms": statistics.median(lat) * 1e3,
        "latency_p99_ms": pct(lat, 0.99) * 1e3,
        "throughput_keys_per_s": thr["keys_per_s"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--conns", type=int, default=2)
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with skiff(
        "serve",
        "bench.workloads:wide",
        "--port",
        str(port),
        env={"SKIFF_BENCH_KEYS": str(args.keys)},
        ready_url=url,
    ):
        endpoint = Endpoint.single("skiff", port)
        figures = asyncio.run(
            wide_figures(endpoint, args.keys, args.writes, args.seconds, args.batch, args.conns)
        )
    result = {
        "keys": args.keys,
        "latency_p50_ms": figures["latency_p50_ms"],
        "latency_p99_ms": figures["latency_p99_ms"],
        "throughput_keys_per_s": figures["throughput_keys_per_s"],
        "batch": args.batch,
        "conns": args.conns,
    }
    print_table(
        "single node over HTTP",
        [
            ("graph keys", f"{args.keys:,}"),
            ("write→SSE p50 (ms)", f"{result['latency_p50_ms']:.2f}"),
            ("write→SSE p99 (ms)", f"{result['latency_p99_ms']:.2f}"),
            (f"ingest, {args.batch}-key PATCH (keys/s)", f"{result['throughput_keys_per_s']:,.0f}"),
        ],
    )
    write_json("http", result)
    return result


if __name__ == "__main__":
    main()
