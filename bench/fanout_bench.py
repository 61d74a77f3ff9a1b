"""Fan-out: one resource instance shared by 1 … 10,000 subscribers; one write's time until the
last subscriber has it, and the server's memory as streams are added.

    .venv/bin/python -m bench.fanout_bench --counts 1,10,100,1000,10000

All subscribers open `probe {"key": 0}` over the items service (bench.workloads:items); each
write sets item 0 to `{"seq": n}`, and the subscriber pool times when each connection sees
`"seq":n}`. skiff shares one instance among identical (resource, params) and encodes each event
once per instance; Skip creates an instance per stream id, which is its model."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import orjson

from bench.cluster import serve
from bench.endpoints import Endpoint, rss_bytes
from bench.report import print_table, write_json
from bench.subscribers import SubscriberPool

PARAMS = {"key": 0}


async def create_streams(endpoint: Endpoint, params: list[Any], conns: int = 4) -> list[str]:
    """Stream ids for `params` (one POST each), over `conns` keep-alive connections."""
    ids: list[str] = [""] * len(params)

    async def worker(offset: int) -> None:
        conn = await endpoint.control()
        try:
            for i in range(offset, len(params), conns):
                ids[i] = await endpoint.create_stream("probe", params[i], conn)
        finally:
            await conn.close()

    await asyncio.gather(*(worker(o) for o in range(conns)))
    return ids


async def fanout_curve(
    streams: Endpoint, writes_to: Endpoint, counts: list[int], writes: int
) -> list[dict[str, Any]]:
    """For each subscriber count (ascending; subscribers are added, never re-opened): RSS of
    every process in `streams.pids`, stream creation rate, and per write the time to the first,
    median and last subscriber."""
    pool = SubscriberPool(streams.host, streams.stream_port)
    rows: list[dict[str, Any]] = []
    seq = 0
    try:
        for count in counts:
            new = count - len(pool)
            t0 = time.perf_counter()
            ids = await create_streams(streams, [PARAMS] * new)
            created_s = time.perf_counter() - t0
            await pool.add([streams.stream_path(i) for i in ids])
            opened_s = time.perf_counter() - t0
            await asyncio.sleep(0.5)
            rss = {role: rss_bytes(pid) for role, pid in streams.pids.items()}
            first, median, last = [], [], []
            for _ in range(writes):
                # A fresh connection per write, opened before the clock starts: reaching
                # 10,000 subscribers can outlast a server's keep-alive timeout (uvicorn: 5 s).
                writer = await writes_to.control()
                seq += 1
                pool.expect(b'"seq":%d}' % seq)
                body = orjson.dumps([[0, [{"seq": seq}]]])
                start = time.perf_counter()
                resp = await writer.request("PATCH", "/v1/inputs/items", body)
                assert resp.status == 200, resp
                arrivals = await pool.arrivals(wait_s=120)
                first.append(min(arrivals) - start)
                median.append(statistics.median(arrivals) - start)
                last.append(max(arrivals) - start)
                await writer.close()
                await asyncio.sleep(0.05)
            rows.append(
                {
                    "subscribers": count,
                    "rss_bytes": rss,
                    "streams_per_s": new / created_s if new else None,
                    "open_s": opened_s,
                    "first_ms": statistics.median(first) * 1e3,
                    "median_ms": statistics.median(median) * 1e3,
                    "last_ms": statistics.median(last) * 1e3,
                    "last_samples_ms": [x * 1e3 for x in last],
                    "refusals": pool.refusals,
                }
            )
    finally:
        pool.close()
    return rows


def per_stream_bytes(rows: list[dict[str, Any]], role: str) -> float | None:
    """RSS growth per stream between the smallest and largest subscriber counts."""
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    grown = float(b["rss_bytes"][role] - a["rss_bytes"][role])
    return grown / int(b["subscribers"] - a["subscribers"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,10,100,1000,10000")
    parser.add_argument("--writes", type=int, default=5)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    with serve("bench.workloads:items", keys=1000) as node:
        rows = asyncio.run(fanout_curve(node, node, counts, args.writes))
    print_table(
        "fan-out, one skiff node",
        [(f"{r['subscribers']:,} subscribers, last (ms)", f"{r['last_ms']:.1f}") for r in rows],
    )
    result = {"rows": rows}
    write_json("fanout", result)
    return result


if __name__ == "__main__":
    main()
