"""Issue 4: what the proxy costs — the latency it adds to write→SSE, the memory of idle SSE
streams on a follower and on the proxy, and one write fanned out to 1,000 subscribers.

    .venv/bin/python -m bench.proxy_bench

Each measurement gets a fresh embedded Valkey, `skiff leader` and one `skiff follower` over
bench.workloads:items (1,000 items), and `skiff proxy`, all on 127.0.0.1 (bench.cluster), so no
process reuses memory an earlier part freed. Every stream is `probe {"key": k}` (one item); a
write sets item k to `{"seq": n}`, and a subscriber has the write when `"seq":n}` arrives on its
socket (bench.subscribers: bare asyncio protocols, timestamped on arrival, no parsing).

1. latency: write→SSE latency of three paths, interleaved in one run (each round sends one
   write per path, in a shuffled order; each write changes only its path's instance):
   `direct` (PATCH to the leader, stream read from the follower), `proxy_stream` (PATCH to the
   leader, stream read through the proxy: the relay alone), `proxy` (PATCH and stream both
   through the proxy: what a client of the proxy sees).
2. fanout: one write to an instance shared by `--fanout-subscribers` subscribers, time until
   the last one has it (bench.fanout_bench.fanout_curve), direct, then through the proxy.
3. streams: `--streams` idle SSE streams on one shared instance, opened `--chunk` at a time
   directly on a follower; then, on a fresh cluster, through the proxy, and the latency of
   part 1 again (`--loaded-writes` per path) while the proxy holds them. RSS per stream =
   (RSS with all open - RSS after `--warm` streams) / the streams in between. The proxy holds
   two sockets per stream (client and node), so its count is capped by the descriptor limit:
   the soft limit is raised to the hard one here, the servers inherit it, and a cap is
   reported. Opening stops early, and the figures are taken on what is open, if a stream is
   refused or opening takes more than `--budget` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import orjson
import psutil

from bench.cluster import Cluster, cluster
from bench.endpoints import Endpoint, rss_bytes
from bench.fanout_bench import create_streams, fanout_curve
from bench.http_bench import pct
from bench.report import print_table, write_json
from bench.subscribers import SubscriberPool
from broker.runtime.fd_limit import raise_open_files_limit

SERVICE, NAME = "bench.workloads:items", "bench-items"
SHARED = {"key": 0}
#: Items written by the latency part, one per path (the fan-out part writes item 0).
PATH_KEYS = {"direct": 1, "proxy_stream": 2, "proxy": 3}
#: Descriptors a process keeps besides its streams (listener, Redis, logs, epoll...): room left
#: under the limit when sizing the streams one process may hold.
FD_MARGIN = 64
#: Descriptors the bench asks for: a proxy holding 10,000 streams needs two per stream.
WANT_FDS = 65_536


# -- file descriptors ----------------------------------------------------------------------------
def raise_fd_limit(want: int = WANT_FDS) -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE (child processes started afterwards inherit it): both
    limits to `want` where allowed (root, or CAP_SYS_RESOURCE), else the soft limit to the hard
    one; returns the (soft, hard) now in force."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return resource.getrlimit(resource.RLIMIT_NOFILE)
        except (ValueError, OSError):
            pass  # not privileged: what the hard limit allows
    raise_open_files_limit()
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fd_count(pid: int) -> int:
    return int(psutil.Process(pid).num_fds())


def fd_limit(pid: int) -> int:
    return int(psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)[0])


def stream_budget(pid: int, fds_per_stream: int) -> int:
    """How many more streams process `pid` can hold under its soft descriptor limit."""
    return max(0, (fd_limit(pid) - fd_count(pid) - FD_MARGIN) // fds_per_stream)


# -- idle streams --------------------------------------------------------------------------------
async def idle_streams(
    streams: Endpoint,
    count: int,
    *,
    warm: int = 100,
    steps: int = 10,
    chunk: int = 10,
    hold_s: float = 3.0,
    settle_s: float = 1.0,
    budget_s: float = 900.0,
    while_held: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Open up to `count` SSE streams on one shared instance through `streams` and keep them
    open: the RSS of every process in `streams.pids` at 0, after `warm` streams and after each
    of `steps` equal steps, and the time to create (POST) and open (GET until init) them.

    Streams are created and opened `chunk` at a time. Opening stops early, and the figures are
    taken on what is open, when the server refuses a stream (the error is reported) or when
    opening has taken `budget_s`. `while_held`, if given, runs once they are all open (its
    result is returned as "while_held")."""
    pool = SubscriberPool(streams.host, streams.stream_port)
    pids = streams.pids
    open_s = create_s = 0.0
    stopped: str | None = None

    def opened() -> int:
        return sum(1 for sub in pool.subscribers if sub.ready)

    def reading() -> dict[str, Any]:
        return {
            "streams": opened(),
            "elapsed_s": create_s + open_s,
            "rss_bytes": {r: rss_bytes(p) for r, p in pids.items()},
        }

    async def grow(target: int) -> None:
        # A chunk at a time, each created (POST) then opened (GET until init) at once, the way
        # a client does: a stream id left unopened would lapse after the proxy's --stream-ttl.
        nonlocal open_s, create_s, stopped
        while stopped is None and len(pool) < target:
            if create_s + open_s > budget_s:
                stopped = f"time budget of {budget_s:.0f} s spent"
                break
            n = min(chunk, target - len(pool))
            t0 = time.perf_counter()
            try:
                ids = await create_streams(streams, [SHARED] * n, conns=min(8, n))
                t1 = time.perf_counter()
                create_s += t1 - t0
                await pool.add([streams.stream_path(i) for i in ids], wait_s=120)
                open_s += time.perf_counter() - t1
            except (RuntimeError, TimeoutError, OSError) as err:
                stopped = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        await asyncio.sleep(settle_s)
        curve.append(reading())

    curve = [reading()]
    try:
        warm = min(warm, count // 10)
        await grow(warm)
        warm_up_s, open_s, create_s = create_s + open_s, 0.0, 0.0
        for step in range(1, steps + 1):
            if stopped is None:
                await grow(warm + (count - warm) * step // steps)
        await asyncio.sleep(hold_s)  # idle: they stay open and cost no more
        held = {r: rss_bytes(p) for r, p in pids.items()}
        fds = {r: fd_count(p) for r, p in pids.items()}
        reached = opened()
        extra: dict[str, Any] | None = None
        if while_held is not None:
            try:
                extra = await while_held()
            except (RuntimeError, TimeoutError, OSError, AssertionError) as err:
                extra = {"error": f"{type(err).__name__}: {err}"[:200]}
        lost = pool.lost
    finally:
        pool.close()
    base, top = curve[1], curve[-1]
    added = max(1, top["streams"] - base["streams"])
    return {
        "requested": count,
        "streams": reached,
        "stopped": stopped,
        "warm": warm,
        "lost": lost,
        "rss_curve": curve,
        "rss_after_hold": held,
        "fds_open": fds,
        "rss_per_stream_bytes": {
            r: (top["rss_bytes"][r] - base["rss_bytes"][r]) / added for r in pids
        },
        "rss_per_stream_from_zero_bytes": {
            r: (top["rss_bytes"][r] - curve[0]["rss_bytes"][r]) / max(1, top["streams"])
            for r in pids
        },
        "create_s": create_s,
        "open_s": open_s,
        "streams_per_s": added / max(1e-9, create_s + open_s),
        "warm_up_s": warm_up_s,
        "while_held": extra,
    }


@dataclass(frozen=True)
class Opening:
    """How idle_streams opens its streams (see there)."""

    warm: int = 100
    steps: int = 10
    chunk: int = 10
    settle_s: float = 1.0
    budget_s: float = 900.0
    #: write→SSE samples per path taken while the proxy holds its idle streams (0: none)
    loaded_writes: int = 200


@contextlib.asynccontextmanager
async def proxied_cluster(proxy: bool = True) -> AsyncIterator[Cluster]:
    """Valkey, a leader and one follower over 1,000 items (+ the proxy, which has learnt its
    members): a fresh one per measurement, so no process reuses memory another part freed."""
    async with cluster(SERVICE, NAME, 1000, followers=1, proxy=proxy) as c:
        if c.proxy is not None:
            await _proxy_sees_followers(c.proxy, len(c.followers))
        yield c
        # Let the nodes see the benchmark's connections close: a follower stopped with SSE
        # readers still connected drains them over its 10 s window first.
        await asyncio.sleep(0.5)


async def _proxy_sees_followers(proxy: Endpoint, followers: int, timeout_s: float = 10.0) -> None:
    conn = await proxy.control()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            nodes = orjson.loads((await conn.request("GET", "/v1/admin/nodes")).body)["nodes"]
            if sum(1 for n in nodes if n["role"] == "follower" and n["serving"]) >= followers:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the proxy did not see {followers} serving follower(s)")
    finally:
        await conn.close()


async def streams_part(count: int, how: Opening) -> dict[str, Any]:
    """`count` idle streams directly on a follower; then, on a fresh cluster, through the
    proxy (and write→SSE latency while it holds them)."""
    me = psutil.Process().pid
    client_cap = stream_budget(me, 1)

    def opened(
        streams: Endpoint, n: int, then: Callable[[], Awaitable[dict[str, Any]]] | None = None
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        return idle_streams(
            streams, n, warm=how.warm, steps=how.steps, chunk=how.chunk,
            hold_s=3 * how.settle_s, settle_s=how.settle_s, budget_s=how.budget_s,
            while_held=then,
        )  # fmt: skip

    async with proxied_cluster(proxy=False) as c:
        pid = c.pids["follower1"]
        direct_n = min(count, client_cap, stream_budget(pid, 1))
        direct = await opened(replace(c.followers[0], pids={"follower": pid}), direct_n)
        follower_limit = fd_limit(pid)
    async with proxied_cluster() as c:
        assert c.proxy is not None
        follower_pid, proxy_pid = c.pids["follower1"], c.pids["proxy"]
        # Two descriptors per stream in the proxy (client and node), one in the follower and
        # one in this client.
        proxy_cap = stream_budget(proxy_pid, 2)
        proxy_n = min(count, client_cap, proxy_cap, stream_budget(follower_pid, 1))
        proxied = replace(c.proxy, pids={"proxy": proxy_pid, "follower": follower_pid})

        def loaded() -> Awaitable[dict[str, Any]]:
            return interleaved_latency(c, how.loaded_writes, warmup=5)

        via_proxy = await opened(proxied, proxy_n, loaded if how.loaded_writes else None)
        proxy_limit = fd_limit(proxy_pid)
    return {
        "requested": count,
        "fd_limit": {"client": fd_limit(me), "follower": follower_limit, "proxy": proxy_limit},
        "capped_by_fd_limit": {"direct": direct_n < count, "proxy": proxy_n < count},
        "proxy_stream_cap": proxy_cap,
        "direct": direct,
        "proxy": via_proxy,
    }


# -- latency -------------------------------------------------------------------------------------
async def interleaved_latency(
    c: Cluster, writes: int, warmup: int = 20, gap_s: float = 0.002, seed: int = 5
) -> dict[str, Any]:
    """`writes` write→SSE samples per path (PATH_KEYS), the paths interleaved round by round in
    a shuffled order; `warmup` rounds first, not counted."""
    assert c.proxy is not None
    proxy, follower, leader = c.proxy, c.followers[0], c.leader
    routes = {  # path -> (where the PATCH goes, where the stream is created and read)
        "direct": (leader, follower),
        "proxy_stream": (leader, proxy),
        "proxy": (proxy, proxy),
    }
    pools: dict[str, SubscriberPool] = {}
    writers = {}
    try:
        for name, (write_to, read_from) in routes.items():
            (sid,) = await create_streams(read_from, [{"key": PATH_KEYS[name]}], conns=1)
            pool = SubscriberPool(read_from.host, read_from.stream_port)
            await pool.add([read_from.stream_path(sid)])
            pools[name] = pool
            writers[name] = await write_to.control()
        samples: dict[str, list[float]] = {name: [] for name in routes}
        rng = random.Random(seed)
        order = list(routes)
        seq = 0
        for round_ in range(warmup + writes):
            rng.shuffle(order)
            for name in order:
                seq += 1
                pool, writer = pools[name], writers[name]
                pool.expect(b'"seq":%d}' % seq)
                body = orjson.dumps([[PATH_KEYS[name], [{"seq": seq}]]])
                start = time.perf_counter()
                writer.send("PATCH", "/v1/inputs/items", body)
                arrived = (await pool.arrivals(wait_s=10))[0]
                resp = await writer.response()
                assert resp.status == 200, resp
                if round_ >= warmup:
                    samples[name].append(arrived - start)
                await asyncio.sleep(gap_s)
    finally:
        for pool in pools.values():
            pool.close()
        for writer in writers.values():
            await writer.close()
    out: dict[str, Any] = {"writes_per_path": writes, "paths": {}}
    for name, values in samples.items():
        out["paths"][name] = {
            "p50_ms": statistics.median(values) * 1e3,
            "p99_ms": pct(values, 0.99) * 1e3,
            "samples_ms": [x * 1e3 for x in values],
        }
    d = out["paths"]["direct"]
    for name in ("proxy_stream", "proxy"):
        out[f"added_{name}_p50_ms"] = out["paths"][name]["p50_ms"] - d["p50_ms"]
        out[f"added_{name}_p99_ms"] = out["paths"][name]["p99_ms"] - d["p99_ms"]
    return out


# -- fan-out -------------------------------------------------------------------------------------
async def fanout_part(c: Cluster, subscribers: int, writes: int) -> dict[str, Any]:
    """One instance shared by `subscribers`: direct (write to the leader, streams on the
    follower), then through the proxy (writes and streams)."""
    assert c.proxy is not None
    follower = replace(c.followers[0], pids={"follower": c.pids["follower1"]})
    (direct,) = await fanout_curve(follower, c.leader, [subscribers], writes)
    await asyncio.sleep(1.0)
    proxy = replace(c.proxy, pids={"follower": c.pids["follower1"], "proxy": c.pids["proxy"]})
    (proxied,) = await fanout_curve(proxy, proxy, [subscribers], writes)
    out: dict[str, Any] = {"subscribers": subscribers, "writes": writes}
    for name, row in (("direct", direct), ("proxy", proxied)):
        last = row["last_samples_ms"]
        out[name] = row | {"last_p50_ms": statistics.median(last), "last_p99_ms": pct(last, 0.99)}
    return out


# -- running -------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, parts: list[str]) -> dict[str, Any]:
    """The `parts` with the options in `args`; options it lacks take the CLI's defaults (so a
    caller such as bench/run_all.py keeps working when options are added). Call
    `raise_fd_limit()` first."""
    args = argparse.Namespace(**(vars(parser().parse_args([])) | vars(args)))
    result: dict[str, Any] = {}
    if "latency" in parts or "fanout" in parts:
        async with proxied_cluster() as c:
            if "latency" in parts:
                result["latency"] = await interleaved_latency(
                    c, args.writes, warmup=args.warmup, gap_s=args.gap
                )
            if "fanout" in parts:
                result["fanout"] = await fanout_part(c, args.fanout_subscribers, args.fanout_writes)
    if "streams" in parts:
        how = Opening(
            args.warm, args.steps, args.chunk, args.settle, args.budget, args.loaded_writes
        )
        result["streams"] = await streams_part(args.streams, how)
    return result


def _pair(a: float, b: float, spec: str = ".2f") -> str:
    return f"{a:{spec}} / {b:{spec}}"


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    lat = result.get("latency")
    if lat:
        p = {name: (v["p50_ms"], v["p99_ms"]) for name, v in lat["paths"].items()}
        out += [
            ("write→SSE direct p50 / p99 (ms)", _pair(*p["direct"])),
            ("write→SSE, stream via proxy p50 / p99", _pair(*p["proxy_stream"])),
            (
                "  added by the relay p50 / p99 (≤0.5)",
                _pair(lat["added_proxy_stream_p50_ms"], lat["added_proxy_stream_p99_ms"], "+.2f"),
            ),
            ("write→SSE, all via proxy p50 / p99", _pair(*p["proxy"])),
            (
                "  added, write + stream p50 / p99",
                _pair(lat["added_proxy_p50_ms"], lat["added_proxy_p99_ms"], "+.2f"),
            ),
        ]
    st = result.get("streams")
    if st:
        d, v = st["direct"], st["proxy"]
        for label, r, role in (
            ("direct on the follower", d, "follower"),
            ("through the proxy", v, "proxy"),
        ):
            cap = "; fd limit" if r["requested"] < st["requested"] else ""
            out += [
                (f"idle streams {label} (asked {r['requested']:,}{cap})", f"{r['streams']:,}"),
                ("  open (s) / streams per s", _pair(r["create_s"] + r["open_s"], r["streams_per_s"], ",.1f")),  # noqa: E501
                (f"  {role} RSS per stream (KB, ≤20)", f"{r['rss_per_stream_bytes'][role] / 1e3:.1f}"),  # noqa: E501
                ("  streams lost while held", f"{r['lost']}"),
            ]  # fmt: skip
            if r["stopped"]:
                out.append(("  stopped early", r["stopped"][:60]))
        out.append(
            (
                "  follower RSS/stream via proxy (KB)",
                f"{v['rss_per_stream_bytes']['follower'] / 1e3:.1f}",
            )
        )
        held = v.get("while_held")
        if held and "error" in held:
            out.append(("  latency while held: failed", held["error"][:60]))
        elif held:
            p = {name: x["p50_ms"] for name, x in held["paths"].items()}
            out.append(
                (
                    f"with {v['streams']:,} held: p50 direct/relay/all (ms)",
                    f"{p['direct']:.2f} / {p['proxy_stream']:.2f} / {p['proxy']:.2f}",
                )
            )
    fo = result.get("fanout")
    if fo:
        n = fo["subscribers"]
        for name in ("direct", "proxy"):
            r = fo[name]
            out.append(
                (f"fan-out {n:,} {name}: last p50 / p99 (ms)", _pair(r["last_p50_ms"], r["last_p99_ms"], ".1f"))  # noqa: E501
            )  # fmt: skip
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="streams,latency,fanout")
    p.add_argument("--streams", type=int, default=10_000, help="idle streams per process")
    p.add_argument("--warm", type=int, default=100, help="streams opened before the baseline")
    p.add_argument("--chunk", type=int, default=10, help="streams opened at once")
    p.add_argument("--steps", type=int, default=10, help="RSS readings while opening")
    p.add_argument("--budget", type=float, default=900.0, help="seconds to open, at most")
    p.add_argument("--settle", type=float, default=1.0, help="seconds before an RSS reading")
    p.add_argument("--writes", type=int, default=1000, help="latency samples per path")
    p.add_argument("--warmup", type=int, default=20, help="latency rounds not counted")
    p.add_argument(
        "--loaded-writes", type=int, default=200, help="latency samples per path while the "
        "proxy holds the idle streams (0: skip)",
    )  # fmt: skip
    p.add_argument("--gap", type=float, default=0.002, help="seconds between writes")
    p.add_argument("--fanout-subscribers", type=int, default=1000)
    p.add_argument("--fanout-writes", type=int, default=30)
    p.add_argument("--name", default="proxy", help="results file name")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cli = parser()
    args = cli.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - {"streams", "latency", "fanout"}
    if unknown:
        cli.error(f"unknown parts: {', '.join(sorted(unknown))}")
    soft, hard = raise_fd_limit()
    result: dict[str, Any] = {"fd_limit": {"soft": soft, "hard": hard}, "args": vars(args)}
    # The machine's load around the run: other work on the same cores shows up in latencies.
    result["loadavg_before"] = os.getloadavg()
    result |= asyncio.run(run(args, parts))
    result["loadavg_after"] = os.getloadavg()
    print_table(f"the proxy (fd limit {soft:,})", rows(result))
    write_json(args.name, result)
    return result


if __name__ == "__main__":
    main()
