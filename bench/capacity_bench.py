"""Per-component costs for the capacity model of docs/scaling.md, and the model's check against
measured 1-, 2- and 3-follower runs.

    .venv/bin/python -m bench.capacity_bench

Costs are CPU seconds read from /proc (psutil) for each process over a paced write load:
- leader and follower: per version (tick / delta) and per key update, solved from two runs at
  the same key rate with different batch sizes;
- Redis: per version and per key the same way, split into the writer's share and each
  follower's share with Redis's own `INFO commandstats` (XREAD and HGETALL are the followers');
- SSE: a follower's extra CPU per update event per subscriber, with subscribers on a key every
  version changes;
- proxy: CPU per byte relayed to subscribers through `skiff proxy`.
Validation: fresh clusters of F = 1, 2, 3 followers under one load, each follower with its own
subscribers; the model predicts each process's CPU; the table shows predicted vs measured."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson
from redis.asyncio import Redis

from bench.cluster import Cluster, cluster
from bench.endpoints import CpuMeter, Endpoint
from bench.fanout_bench import create_streams
from bench.report import print_table, write_json
from bench.subscribers import SubscriberPool
from bench.workloads import item_value

SERVICE, NAME = "bench.workloads:items", "bench-items"
READER_COMMANDS = ("xread", "hgetall")


@dataclass(frozen=True)
class Load:
    keys_per_s: float
    batch: int
    subscribers_per_follower: int = 0
    seconds: float = 6.0

    @property
    def versions_per_s(self) -> float:
        return self.keys_per_s / self.batch


@dataclass(frozen=True)
class Costs:
    """CPU seconds per unit of work (and per second when idle)."""

    leader_idle: float
    leader_per_version: float
    leader_per_key: float
    follower_idle: float
    follower_per_version: float
    follower_per_key: float
    sse_per_event: float
    redis_idle: float
    redis_per_version: float
    redis_per_key: float
    redis_reader_share: float  # of redis_per_* with one follower, what that follower costs
    proxy_per_byte: float
    event_bytes: float  # bytes of one probe update event on the wire


async def _redis_command_usec(url: str) -> dict[str, float]:
    redis = Redis.from_url(url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return {name.removeprefix("cmdstat_"): float(v["usec"]) for name, v in stats.items()}


async def _open_subscribers(streams: Endpoint, count: int, key: int = 0) -> SubscriberPool:
    pool = SubscriberPool(streams.host, streams.stream_port)
    ids = await create_streams(streams, [{"key": key}] * count)
    await pool.add([streams.stream_path(i) for i in ids])
    return pool


async def drive(c: Cluster, load: Load, pools: list[SubscriberPool]) -> dict[str, Any]:
    """Pace `load` into the leader (every batch rewrites key 0, which the probes follow) and
    return each process's CPU seconds per second, versions, keys and what subscribers got."""
    rng = random.Random(11)
    # The benchmark client shares the cores: its CPU is measured too.
    meter = CpuMeter(c.pids | {"client": os.getpid()})
    writer = await c.leader.control()
    updates0 = [p.updates for p in pools]
    bytes0 = [p.bytes_received for p in pools]
    usec0 = await _redis_command_usec(c.redis_url)
    meter.start()
    start = time.perf_counter()
    interval = load.batch / load.keys_per_s
    n = 0
    while time.perf_counter() - start < load.seconds:
        entries: list[Any] = [[0, [{"seq": n}]]]
        for _ in range(load.batch - 1):
            i = rng.randrange(1, 10_000)
            entries.append([i, [item_value(i) | {"v": n}]])
        resp = await writer.request("PATCH", "/v1/inputs/items", orjson.dumps(entries))
        assert resp.status == 200, resp
        n += 1
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(0.3)  # let the last deltas reach every subscriber
    elapsed = time.perf_counter() - start
    used = meter.stop()
    usec1 = await _redis_command_usec(c.redis_url)
    await writer.close()
    delta_usec = {k: usec1[k] - usec0.get(k, 0.0) for k in usec1 if k != "info"}
    reader = sum(delta_usec.get(k, 0.0) for k in READER_COMMANDS)
    total = sum(delta_usec.values()) or 1.0
    return {
        "cpu_per_s": {role: sec / elapsed for role, sec in used.items()},
        "versions_per_s": n / elapsed,
        "keys_per_s": n * load.batch / elapsed,
        "events_per_s": [(p.updates - u) / elapsed for p, u in zip(pools, updates0, strict=True)],
        "bytes_per_s": [
            (p.bytes_received - b) / elapsed for p, b in zip(pools, bytes0, strict=True)
        ],
        "redis_reader_share": reader / total,
    }


async def idle(c: Cluster, seconds: float) -> dict[str, float]:
    meter = CpuMeter(c.pids)
    meter.start()
    await asyncio.sleep(seconds)
    return {role: sec / seconds for role, sec in meter.stop().items()}


def _split(a: dict[str, Any], b: dict[str, Any], role: str, base: float) -> tuple[float, float]:
    """Per-version and per-key cost from two runs at one key rate, different batch sizes."""
    ya, yb = a["cpu_per_s"][role] - base, b["cpu_per_s"][role] - base
    va, vb = a["versions_per_s"], b["versions_per_s"]
    per_version = max(0.0, (yb - ya) / (vb - va))
    ka = a["keys_per_s"]
    per_key = max(0.0, (ya - va * per_version) / ka)
    return per_version, per_key


async def calibrate(quick: bool) -> tuple[Costs, dict[str, Any]]:
    seconds = 2.0 if quick else 6.0
    subs = 100 if quick else 500
    rate = 2000.0
    raw: dict[str, Any] = {}
    async with cluster(SERVICE, NAME, 10_000, followers=1, proxy=True) as c:
        await asyncio.sleep(1.5)  # the proxy learns its members
        base = await idle(c, seconds)
        raw["idle"] = base
        coarse = await drive(c, Load(rate, 100, seconds=seconds), [])
        fine = await drive(c, Load(rate, 10, seconds=seconds), [])
        raw["batch100"], raw["batch10"] = coarse, fine
        direct = await _open_subscribers(c.followers[0], subs)
        with_sse = await drive(c, Load(rate, 100, subs, seconds), [direct])
        raw["sse_direct"] = with_sse
        direct.close()
        assert c.proxy is not None
        await asyncio.sleep(0.5)
        proxied = None
        for attempt in range(5):
            try:
                proxied = await _open_subscribers(replace(c.proxy, pids={}), subs)
                break
            except RuntimeError:  # a 503 while the follower settles after the direct run
                if attempt == 4:
                    raise
                await asyncio.sleep(1.0)
        assert proxied is not None
        via_proxy = await drive(c, Load(rate, 100, subs, seconds), [proxied])
        raw["sse_proxy"] = via_proxy
        proxied.close()
    lv, lk = _split(coarse, fine, "leader", base["leader"])
    fv, fk = _split(coarse, fine, "follower1", base["follower1"])
    rv, rk = _split(coarse, fine, "redis", base["redis"])
    events = sum(with_sse["events_per_s"]) or 1.0
    sse = max(0.0, (with_sse["cpu_per_s"]["follower1"] - coarse["cpu_per_s"]["follower1"]))
    relayed = sum(via_proxy["bytes_per_s"]) or 1.0
    proxy = max(0.0, via_proxy["cpu_per_s"]["proxy"] - base["proxy"])
    costs = Costs(
        leader_idle=base["leader"],
        leader_per_version=lv,
        leader_per_key=lk,
        follower_idle=base["follower1"],
        follower_per_version=fv,
        follower_per_key=fk,
        sse_per_event=sse / events,
        redis_idle=base["redis"],
        redis_per_version=rv,
        redis_per_key=rk,
        redis_reader_share=(coarse["redis_reader_share"] + fine["redis_reader_share"]) / 2,
        proxy_per_byte=proxy / relayed,
        event_bytes=sum(with_sse["bytes_per_s"]) / events,
    )
    return costs, raw


def predict(costs: Costs, load: Load, followers: int) -> dict[str, float]:
    """CPU seconds per second of each process under `load` with `followers` followers, each
    with `load.subscribers_per_follower` subscribers on an instance every version changes."""
    v, k = load.versions_per_s, load.keys_per_s
    follower = (
        costs.follower_idle
        + v * costs.follower_per_version
        + k * costs.follower_per_key
        + v * load.subscribers_per_follower * costs.sse_per_event
    )
    one_follower_redis = v * costs.redis_per_version + k * costs.redis_per_key
    reader = costs.redis_reader_share
    out = {
        "leader": costs.leader_idle + v * costs.leader_per_version + k * costs.leader_per_key,
        "redis": costs.redis_idle + one_follower_redis * ((1 - reader) + followers * reader),
    }
    for i in range(followers):
        out[f"follower{i + 1}"] = follower
    return out


async def validate(costs: Costs, load: Load, counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    for followers in counts:
        async with cluster(SERVICE, NAME, 10_000, followers=followers) as c:
            pools = [await _open_subscribers(f, load.subscribers_per_follower) for f in c.followers]
            measured = await drive(c, load, pools)
            for pool in pools:
                pool.close()
        predicted = predict(costs, load, followers)
        rows.append(
            {
                "followers": followers,
                "predicted": predicted,
                "measured": measured["cpu_per_s"],
                "events_per_s": sum(measured["events_per_s"]),
                "events_demanded_per_s": load.versions_per_s
                * load.subscribers_per_follower
                * followers,
            }
        )
    return rows


def plan(costs: Costs, keys_per_s: float, batch: int, instances_events: float,
         streams: int, utilisation: float = 0.7) -> dict[str, Any]:  # fmt: skip
    """Followers and proxies for a load: `instances_events` = update events per second summed
    over all subscribers (writes reaching an instance x its subscribers), `streams` open."""
    v = keys_per_s / batch
    leader = v * costs.leader_per_version + keys_per_s * costs.leader_per_key
    apply = (
        costs.follower_idle + v * costs.follower_per_version + keys_per_s * costs.follower_per_key
    )
    room = utilisation - apply
    followers = None if room <= 0 else max(1, -(-instances_events * costs.sse_per_event // room))
    proxy_cpu = instances_events * costs.event_bytes * costs.proxy_per_byte
    proxies = max(1, -(-proxy_cpu // utilisation))
    redis_one = v * costs.redis_per_version + keys_per_s * costs.redis_per_key
    share = costs.redis_reader_share
    redis = redis_one * ((1 - share) + (followers or 1) * share)
    return {
        "leader_cpu": leader,
        "follower_apply_cpu": apply,
        "followers": followers,
        "proxies": int(proxies),
        "redis_cpu": redis,
        "streams_per_follower": streams / followers if followers else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--followers", default="1,2,3")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.quick, [int(f) for f in args.followers.split(",")]))
    print_capacity(result)
    write_json("capacity", result)
    return result


async def run(quick: bool, counts: list[int]) -> dict[str, Any]:
    costs, raw = await calibrate(quick)
    # A load the 2-core machine can carry with 3 followers and the client (model: about 1 core
    # of servers), and one it cannot (the model predicts more than 2 cores).
    load = Load(3000.0, 50, 50 if quick else 100, 2.0 if quick else 6.0)
    rows = await validate(costs, load, counts)
    heavy = Load(3000.0, 50, 100 if quick else 300, 2.0 if quick else 6.0)
    overload = await validate(costs, heavy, counts)
    return {
        "costs": asdict(costs),
        "calibration": raw,
        "load": asdict(load),
        "validation": rows,
        "overload": {"load": asdict(heavy), "rows": overload},
    }


def print_capacity(result: dict[str, Any]) -> None:
    c = result["costs"]
    rows = [
        ("leader µs/version (tick, append)", f"{c['leader_per_version'] * 1e6:.0f}"),
        ("leader µs/key update", f"{c['leader_per_key'] * 1e6:.1f}"),
        ("follower µs/delta applied", f"{c['follower_per_version'] * 1e6:.0f}"),
        ("follower µs/key applied", f"{c['follower_per_key'] * 1e6:.1f}"),
        ("SSE µs/event/subscriber", f"{c['sse_per_event'] * 1e6:.1f}"),
        ("proxy ns/byte relayed", f"{c['proxy_per_byte'] * 1e9:.1f}"),
        ("Redis µs/append (version)", f"{c['redis_per_version'] * 1e6:.0f}"),
        ("Redis µs/key", f"{c['redis_per_key'] * 1e6:.2f}"),
    ]
    for row in result["validation"]:
        for role, predicted in row["predicted"].items():
            measured = row["measured"][role]
            rows.append(
                (
                    f"{row['followers']}F {role} CPU pred/meas",
                    f"{predicted:.3f}/{measured:.3f}",
                )
            )
    print_table("capacity model", rows)


if __name__ == "__main__":
    main()


def markdown_tables(result: dict[str, Any]) -> str:
    """The costs and the validation as markdown (pasted into docs/scaling.md)."""
    c = result["costs"]
    out = [
        "| cost | measured |",
        "|---|---:|",
        f"| leader, per version (tick + input-log and delta appends) | {c['leader_per_version'] * 1e6:.0f} µs |",  # noqa: E501
        f"| leader, per key update | {c['leader_per_key'] * 1e6:.1f} µs |",
        f"| follower, per delta applied | {c['follower_per_version'] * 1e6:.0f} µs |",
        f"| follower, per key applied | {c['follower_per_key'] * 1e6:.1f} µs |",
        f"| follower, per SSE event per subscriber | {c['sse_per_event'] * 1e6:.1f} µs |",
        f"| proxy, per byte relayed | {c['proxy_per_byte'] * 1e9:.0f} ns "
        f"({c['proxy_per_byte'] * c['event_bytes'] * 1e6:.0f} µs per {c['event_bytes']:.0f}-byte event) |",  # noqa: E501
        f"| Redis, per version (append + one follower's read) | {c['redis_per_version'] * 1e6:.0f} µs |",  # noqa: E501
        f"| Redis, per key | {c['redis_per_key'] * 1e6:.2f} µs |",
        f"| Redis, share of that which is the follower's read | {c['redis_reader_share'] * 100:.0f} % |",  # noqa: E501
        "",
    ]
    for title, rows, load in (
        ("validation", result["validation"], result["load"]),
        ("overload", result["overload"]["rows"], result["overload"]["load"]),
    ):
        out.append(
            f"**{title}**: {load['keys_per_s']:,.0f} keys/s in {load['batch']}-key batches, "
            f"{load['subscribers_per_follower']} subscribers per follower on a key every version "
            "changes; CPU in cores (CPU-seconds per second)."
        )
        out.append("")
        out.append("| followers | process | predicted | measured | error |")
        out.append("|---:|---|---:|---:|---:|")
        for row in rows:
            for role, predicted in row["predicted"].items():
                measured = row["measured"][role]
                err = (predicted - measured) / measured * 100 if measured else float("nan")
                out.append(
                    f"| {row['followers']} | {role} | {predicted:.3f} | {measured:.3f} | {err:+.0f} % |"  # noqa: E501
                )
            total_p = sum(row["predicted"].values())
            total_m = sum(row["measured"][k] for k in row["predicted"])
            out.append(
                f"| {row['followers']} | **servers, total** | {total_p:.3f} | {total_m:.3f} | "
                f"{(total_p - total_m) / total_m * 100:+.0f} % |"
            )
            out.append(
                f"| {row['followers']} | (benchmark client) | — | {row['measured'].get('client', 0):.3f} | |"  # noqa: E501
            )
            delivered = row["events_per_s"] / max(1.0, row["events_demanded_per_s"])
            out.append(
                f"| {row['followers']} | events delivered / demanded | | "
                f"{row['events_per_s']:,.0f} / {row['events_demanded_per_s']:,.0f} | {delivered * 100:.0f} % |"  # noqa: E501
            )
        out.append("")
    return "\n".join(out)
