"""What the client limits cost: stream creation and writes through the proxy, and opening a stream
on a follower's fast path, with the limits off, with the connection guard only, and with the
guard and the Redis rate limits — all three in one run, requests interleaved.

    .venv/bin/python -m bench.limits_bench --samples 1000

One embedded Valkey holds two copies of the test service (tests/support/cluster_services.py),
each with a leader and a follower:
- `off`: every process started by bench/limits_off.py (uvicorn's plain protocol, a node's
  connections admitted by a guard that does nothing), its proxy at `--stream-rate 0
  --write-rate 0`: the request path as it was before issue 16;
- `guard`: real `skiff` processes (header deadline, per-address cap), its proxy at `--stream-rate
  0 --write-rate 0`;
- `limits`: a second proxy on the same nodes as `guard`, with the rate limits on at the default
  rates and a burst larger than the whole run (so no request is refused, and each one runs the
  rate script in Redis as a client under its limit does).

Each figure's samples go round the variants one request at a time (the order rotating), on one
keep-alive raw connection per proxy; `node open` connects, sends `GET /v1/streams/{id}` to the
follower, reads the `init` event and closes (the rate limits are the proxy's, so it has no
`limits` variant). Printed and written: median and p99 per variant, the ratio of medians to
`off`, and the median of the paired differences (each request minus the `off` request of the
same round: what the noise of a shared machine blurs least). `rate_script_ms`: the rate script
called from this process, the Redis round trip the `limits` variant adds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from bench.http_bench import pct
from bench.rawhttp import RawConnection, SseReader
from bench.report import print_table, write_json
from broker.store.keyspace import Keyspace
from broker.store.rate_limit import RateLimit, take
from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import Cluster, Proc

VARIANTS: Final = ("off", "guard", "limits")
FIGURES: Final = ("create_ms", "write_ms", "node_open_ms")
_SERVICES: Final = "tests.support.cluster_services"
_RATES_OFF: Final = ("--stream-rate", "0", "--write-rate", "0")
_WARM_UP: Final = 50

Once = Callable[[int], Awaitable[None]]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _interleaved(samples: int, calls: dict[str, Once]) -> dict[str, list[float]]:
    """`samples` timed calls of each variant, one variant after the other, the order rotating."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for n in range(samples):
        shift = n % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            await calls[name](n)
            times[name].append((time.perf_counter() - t0) * 1000)
    return times


def _summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    base = times["off"]
    out = {}
    for name, values in times.items():
        out[name] = {
            "median": statistics.median(values),
            "p99": pct(values, 0.99),
            "ratio": statistics.median(values) / statistics.median(base),
            "added_median": statistics.median(v - b for v, b in zip(values, base, strict=True)),
        }
    return out


async def _nodes(cluster: Cluster) -> Proc:
    await cluster.leader("L1")
    return await cluster.follower("F1")


def _creator(conn: RawConnection) -> Once:
    params = orjson.dumps({"limit": 5})

    async def create(n: int) -> None:
        reply = await conn.request("POST", "/v1/streams/top", params)
        assert reply.status == 201, reply

    return create


def _writer(conn: RawConnection) -> Once:
    async def write(n: int) -> None:
        body = orjson.dumps([[f"bench-{n}", [{"post": n % 20}]]])
        reply = await conn.request("PATCH", "/v1/inputs/votes", body)
        assert reply.status == 200, reply

    return write


async def _opener(follower: Proc, samples: int) -> Once:
    port = _port(follower.url)
    direct = await RawConnection.open("127.0.0.1", port)
    params = orjson.dumps({"limit": 5})
    ids = [
        (await direct.request("POST", "/v1/streams/top", params)).body.decode()
        for _ in range(samples)
    ]
    await direct.close()

    async def open_stream(n: int) -> None:
        sse = await SseReader.open("127.0.0.1", port, f"/v1/streams/{ids[n]}")
        kind, _, _ = await sse.event()
        assert kind == "init"
        await sse.conn.close()

    return open_stream


async def _rate_script(redis_url: str, samples: int) -> float:
    """Median ms of one rate-script call (broker/store/rate_limit.py) from this process."""
    limit = RateLimit(per_s=1000, burst=10 * samples)
    key = Keyspace("bench").rate("streams", "addr:127.0.0.1")
    redis = Redis.from_url(redis_url)
    try:
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            verdict = await take(redis, key, limit)
            times.append((time.perf_counter() - t0) * 1000)
            assert verdict.allowed
        return statistics.median(times)
    finally:
        await redis.aclose()


async def _script_calls(redis_url: str) -> dict[str, int]:
    """How often Redis ran a script by hash, by source, and loaded one (INFO commandstats)."""
    redis = Redis.from_url(redis_url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    names = {"evalsha": "cmdstat_evalsha", "eval": "cmdstat_eval", "load": "cmdstat_script|load"}
    return {name: int(stats.get(key, {}).get("calls", 0)) for name, key in names.items()}


async def measure(samples: int) -> dict[str, Any]:
    # Every creation and write of the run, and the warm-up, fits in the burst.
    burst = str(4 * (samples + _WARM_UP))
    limited = ("--stream-burst", burst, "--write-burst", burst)
    off_command = (sys.executable, "-m", "bench.limits_off")
    with tempfile.TemporaryDirectory(prefix="skiff-limits-bench-") as tmp:
        (Path(tmp) / "off").mkdir()
        (Path(tmp) / "on").mkdir()
        async with (
            EmbeddedRedis() as redis,
            Cluster(
                redis.url, Path(tmp) / "off", service=f"{_SERVICES}:alpha", command=off_command
            ) as off,
            Cluster(redis.url, Path(tmp) / "on", service=f"{_SERVICES}:service") as on,
        ):
            followers = {"off": await _nodes(off), "guard": await _nodes(on)}
            proxies = {
                "off": await off.proxy("proxy", "--service", "alpha", *_RATES_OFF),
                "guard": await on.proxy("proxy", "--service", "cluster", *_RATES_OFF),
                "limits": await on.proxy("proxy-limits", "--service", "cluster", *limited),
            }
            conns = {
                name: await RawConnection.open("127.0.0.1", _port(p.url))
                for name, p in proxies.items()
            }
            creates = {name: _creator(conn) for name, conn in conns.items()}
            writes = {name: _writer(conn) for name, conn in conns.items()}
            opens = {
                name: await _opener(follower, samples + _WARM_UP)
                for name, follower in followers.items()
            }
            # Stream opens first, while both followers hold the same streams (the creations
            # and writes below give the `guard` cluster's follower twice as much to hold).
            # The warm-up uses the first ids; the timed opens take the rest.
            warmed = {name: _skipping(_WARM_UP, once) for name, once in opens.items()}
            await _interleaved(_WARM_UP, opens)
            result: dict[str, Any] = {"node_open_ms": _summary(await _interleaved(samples, warmed))}
            await _interleaved(_WARM_UP, creates)
            await _interleaved(_WARM_UP, writes)
            before = await _script_calls(redis.url)
            result["create_ms"] = _summary(await _interleaved(samples, creates))
            result["write_ms"] = _summary(await _interleaved(samples, writes))
            after = await _script_calls(redis.url)
            # The rate script, once per limited request; the leaders' appends (one per write of
            # every variant) and lease renewals add theirs.
            result["script_calls"] = {k: after[k] - before[k] for k in after}
            result["rate_script_ms"] = await _rate_script(redis.url, samples)
            for conn in conns.values():
                await conn.close()
            return result


def _skipping(first: int, once: Once) -> Once:
    async def call(n: int) -> None:
        await once(first + n)

    return call


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000, help="timed requests per variant")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.samples))
    result: dict[str, Any] = {"samples": args.samples, "variants": list(VARIANTS), **figures}
    rows = [
        (
            f"{figure} {name}",
            f"{s['median']:.3f} / {s['p99']:.2f}  x{s['ratio']:.2f}  {s['added_median']:+.3f}",
        )
        for figure in FIGURES
        for name, s in figures[figure].items()
    ]
    rows.append(("rate script alone (ms)", f"{figures['rate_script_ms']:.3f}"))
    calls = figures["script_calls"]
    rows.append(
        (
            f"scripts in {2 * args.samples} limited + {3 * args.samples} writes",
            f"evalsha {calls['evalsha']}, eval {calls['eval']}, load {calls['load']}",
        )
    )
    print_table("client limits: median / p99 ms, ratio of medians to off, paired +ms", rows)
    write_json("limits", result)
    return result


if __name__ == "__main__":
    main()
