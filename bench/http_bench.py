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
from typing import Any

import orjson

from bench.procs import free_port, skiff
from bench.rawhttp import RawConnection, SseReader
from bench.report import print_table, write_json
from bench.workloads import GROUPS


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def open_top_stream(port: int) -> SseReader:
    conn = await RawConnection.open("127.0.0.1", port)
    resp = await conn.request("POST", "/v1/streams/top", b'{"limit": 10}')
    assert resp.status == 201, resp
    stream_id = resp.body.decode()
    await conn.close()
    sse = await SseReader.open("127.0.0.1", port, f"/v1/streams/{stream_id}")
    kind, _, _ = await sse.event()
    assert kind == "init"
    return sse


async def latency(port: int, writes: int) -> list[float]:
    """Each write raises one group's total past all others, so every write changes the top 10."""
    sse = await open_top_stream(port)
    conn = await RawConnection.open("127.0.0.1", port)
    samples = []
    for n in range(writes):
        # Strictly increasing by more than any group total differs: the written group becomes
        # the new first entry of the top 10 every time.
        value = 10**9 + n * 10**7
        key = n % 50
        body = orjson.dumps([[key, [{"g": key % GROUPS, "v": value}]]])
        t0 = time.perf_counter()
        conn.send("PATCH", "/v1/inputs/events", body)
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


async def throughput(
    port: int, keys: int, seconds: float, batch: int, conns: int
) -> dict[str, Any]:
    sse = await open_top_stream(port)
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
        conn = await RawConnection.open("127.0.0.1", port)
        while time.perf_counter() < deadline:
            entries = []
            for _ in range(batch):
                i = rng.randrange(keys)
                entries.append([i, [{"g": i % GROUPS, "v": rng.randrange(10**6)}]])
            resp = await conn.request("PATCH", "/v1/inputs/events", orjson.dumps(entries))
            assert resp.status == 200, resp
            written += batch
        await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(writer(s) for s in range(conns)))
    elapsed = time.perf_counter() - start
    follower.cancel()
    await sse.conn.close()
    return {"keys_per_s": written / elapsed, "sse_updates": updates, "seconds": elapsed}


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
        lat = asyncio.run(latency(port, args.writes))
        thr = asyncio.run(throughput(port, args.keys, args.seconds, args.batch, args.conns))
    result = {
        "keys": args.keys,
        "latency_p50_ms": statistics.median(lat) * 1e3,
        "latency_p99_ms": pct(lat, 0.99) * 1e3,
        "throughput_keys_per_s": thr["keys_per_s"],
        "batch": args.batch,
        "conns": args.conns,
    }
    print_table(
        "single node over HTTP",
        [
            ("graph keys", f"{args.keys:,}"),
            ("write→SSE p50 (ms)", f"{result['latency_p50_ms']:.2f}"),
            ("write→SSE p99 (ms)", f"{result['latency_p99_ms']:.2f}"),
            (f"ingest, {args.batch}-key PATCH (keys/s)", f"{thr['keys_per_s']:,.0f}"),
        ],
    )
    write_json("http", result)
    return result


if __name__ == "__main__":
    main()
