"""What the client limits cost: stream creation and writes through the proxy (rate-limit script
in Redis, connection guard), and opening a stream on a follower's fast path (guard only).

    .venv/bin/python -m bench.limits_bench --samples 250
    .venv/bin/python -m bench.limits_bench --baseline DIR   # DIR: a checkout without the limits

A leader, a follower and a proxy (real processes, one embedded Valkey) at their default limits;
each figure is the median of `--samples` sequential requests on a keep-alive raw connection
(creations use one params, so they share one instance and fit within the default burst).
With `--baseline`, the same is run from DIR (PYTHONPATH=DIR) and this checkout in turn, twice
each, and the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.rawhttp import RawConnection, SseReader
from bench.report import print_table, write_json
from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import Cluster

FIGURES = ("create_ms", "write_ms", "node_open_ms")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _timed(samples: int, once: Any) -> float:
    times = []
    for n in range(samples):
        t0 = time.perf_counter()
        await once(n)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def measure(samples: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="skiff-limits-bench-") as tmp:
        async with EmbeddedRedis() as redis, Cluster(redis.url, Path(tmp), env=env) as cluster:
            await cluster.leader("L1")
            follower = await cluster.follower("F1")
            proxy = await cluster.proxy("proxy")
            conn = await RawConnection.open("127.0.0.1", _port(proxy.url))
            params = orjson.dumps({"limit": 5})

            async def create(n: int) -> None:
                reply = await conn.request("POST", "/v1/streams/top", params)
                assert reply.status == 201, reply

            async def write(n: int) -> None:
                body = orjson.dumps([[f"bench-{n}", [{"post": n % 20}]]])
                reply = await conn.request("PATCH", "/v1/inputs/votes", body)
                assert reply.status == 200, reply

            direct = await RawConnection.open("127.0.0.1", _port(follower.url))
            ids = [
                (await direct.request("POST", "/v1/streams/top", params)).body.decode()
                for _ in range(samples)
            ]

            async def open_stream(n: int) -> None:
                sse = await SseReader.open(
                    "127.0.0.1", _port(follower.url), f"/v1/streams/{ids[n]}"
                )
                kind, _, _ = await sse.event()
                assert kind == "init"
                await sse.conn.close()

            await _timed(20, create)  # warm-up
            result = {
                "create_ms": await _timed(samples, create),
                "write_ms": await _timed(samples, write),
                "node_open_ms": await _timed(samples, open_stream),
            }
            await conn.close()
            await direct.close()
            return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"limits": []}
    plan: list[tuple[str, dict[str, str]]] = [("limits", {})]
    if args.baseline is not None:
        runs["baseline"] = []
        base = {"PYTHONPATH": f"{args.baseline.resolve()}{os.pathsep}" + os.environ.get(
            "PYTHONPATH", "")}  # fmt: skip
        plan = [("baseline", base), ("limits", {})] * 2
    for name, env in plan:
        runs[name].append(asyncio.run(measure(args.samples, env)))
    result: dict[str, Any] = {"samples": args.samples, "runs": runs}
    medians = {
        name: {f: statistics.median(r[f] for r in rs) for f in FIGURES} for name, rs in runs.items()
    }
    result["medians_ms"] = medians
    rows = [(f"{name} {f}", f"{v:.3f} ms") for name, m in medians.items() for f, v in m.items()]
    if "baseline" in medians:
        result["ratio"] = {f: medians["limits"][f] / medians["baseline"][f] for f in FIGURES}
        rows += [(f"ratio {f}", f"{v:.3f}") for f, v in result["ratio"].items()]
    print_table("client limits: median latency", rows)
    write_json("limits", result)
    return result


if __name__ == "__main__":
    main()
