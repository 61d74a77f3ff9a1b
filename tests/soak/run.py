"""`make soak`: a cluster (Valkey, a leader, a standby, two followers, the proxy) under steady
writes and 1,000 SSE streams held through the proxy, for SOAK_SECONDS (default 600). Every
`--every` seconds it samples each process's RSS, open fds and asyncio tasks; at the end it
prints the series and fails (exit 1) when a process grew beyond the bounds below between the
end of the warm-up and the end of the run.

    python -m tests.soak.run --seconds 600 --streams 1000 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import Cluster, Proc, metric

# Bounds (docs/reliability.md): growth from the end of warm-up to the end of the run.
RSS_GROWTH = 0.25  # fraction, plus RSS_SLACK_MB
RSS_SLACK_MB = 24
FD_GROWTH = 50
TASK_GROWTH = 50


async def writer(url: str, rate: float, stop: asyncio.Event) -> int:
    rng, n = random.Random(7), 0
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            n += 1
            body = [[f"soak-{n}", [{"post": rng.randrange(20)}]]]
            try:
                await http.patch(
                    f"{url}/v1/inputs/votes", json=body, headers={"Idempotency-Key": f"soak-{n}"}
                )
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1 / rate)
    return n


async def hold_stream(port: int, stream_id: str, stop: asyncio.Event, counts: list[int]) -> None:
    """A minimal SSE reader on a raw socket: reads and discards, reconnects on EOF."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /v1/streams/{stream_id} HTTP/1.1\r\nHost: soak\r\n"
                "Accept: text/event-stream\r\n\r\n".encode()
            )
            while chunk := await reader.read(65536):
                counts[0] += len(chunk)
                if stop.is_set():
                    break
            writer.close()
        except OSError:
            pass
        await asyncio.sleep(1)


def sample(proc: Proc, text: str | None) -> dict[str, float]:
    # From /proc (Linux): no dependency beyond the test extras.
    status = Path(f"/proc/{proc.pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    out = {"rss_mb": round(rss_kb / 1024, 1), "fds": float(fds)}
    if text is not None:
        out["tasks"] = metric(text, "skiff_asyncio_tasks")
    return out


async def main(seconds: float, streams: int, rate: float, every: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="skiff-soak-"))
    redis = EmbeddedRedis(appendonly=True)
    await redis.start()
    cluster = Cluster(redis.url, tmp)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    try:
        await cluster.leader("L1", "--snapshot-every", "500")
        await cluster.leader("L2", ready=False)
        await cluster.follower("F1")
        await cluster.follower("F2")
        proxy = await cluster.proxy("proxy", "--stream-ttl", "120")
        port = int(proxy.url.rsplit(":", 1)[1])
        tasks.append(asyncio.create_task(writer(proxy.url, rate, stop)))
        counts = [0]
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
            gate = asyncio.Semaphore(32)

            async def open_one(i: int) -> None:
                async with gate:
                    r = await http.post(f"{proxy.url}/v1/streams/top", json={"limit": 5 + i % 20})
                r.raise_for_status()
                tasks.append(asyncio.create_task(hold_stream(port, r.text, stop, counts)))

            await asyncio.gather(*(open_one(i) for i in range(streams)))
            print(f"{streams} streams open", flush=True)
            series: dict[str, list[dict[str, float]]] = {n: [] for n in cluster.procs}
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                for name, proc in cluster.procs.items():
                    try:
                        text = (await http.get(proc.url + "/metrics")).text
                    except httpx.HTTPError:
                        text = None
                    series[name].append({"t": round(elapsed), **sample(proc, text)})
                print(
                    f"t={elapsed:5.0f}s bytes={counts[0]} "
                    + " ".join(f"{n}:{s[-1]['rss_mb']}MB/{s[-1]['fds']:.0f}fd/"
                               f"{s[-1].get('tasks', 0):.0f}t" for n, s in series.items()),
                    flush=True,
                )  # fmt: skip
                await asyncio.sleep(every)
        failures = check(series)
        print(json.dumps({"series": series, "failures": failures}))
        for failure in failures:
            print("FAIL", failure)
        return 1 if failures else 0
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cluster.close()
        await redis.close()


def check(series: dict[str, list[dict[str, float]]]) -> list[str]:
    """Compare the samples after warm-up (the first fifth) with the last ones."""
    failures = []
    for name, samples in series.items():
        if len(samples) < 5:
            continue
        base = samples[len(samples) // 5]
        last = samples[-1]
        if last["rss_mb"] > base["rss_mb"] * (1 + RSS_GROWTH) + RSS_SLACK_MB:
            failures.append(f"{name}: RSS {base['rss_mb']} -> {last['rss_mb']} MB")
        if last["fds"] > base["fds"] + FD_GROWTH:
            failures.append(f"{name}: fds {base['fds']} -> {last['fds']}")
        if "tasks" in base and "tasks" in last and last["tasks"] > base["tasks"] + TASK_GROWTH:
            failures.append(f"{name}: tasks {base['tasks']} -> {last['tasks']}")
    return failures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="write batches per second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.streams, args.rate, args.every)))
