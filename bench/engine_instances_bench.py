"""Many live instances in one engine: what a write costs, what creating and freeing an instance
costs and how many bytes the engine keeps per instance, as the number of live instances grows.

    .venv/bin/python -m bench.engine_instances_bench              # 10 .. 100,000 instances
    .venv/bin/python -m bench.engine_instances_bench --quick      # 10 .. 1,000

The engine alone, no I/O. Workloads:

- slice: instance i is `probe {"key": i}` = items.slice(i, i). A write sets the item of a
  random live instance: it reaches exactly one instance.
- mirror: the same instances on a follower's engine (`Engine.mirror`), each write a replicated
  delta of 100 items, 10 of them live instances' keys (each reaches one instance), 90 not.
- take: instance i is `window {"limit": 10 + i % 10, "viewer": i}` = items.take(limit). "past"
  writes set items after every window (they reach none); "inside" writes set an item every
  window shows (every instance's output changes: the cost is per instance by nature).
- hackernews: examples/hackernews.py's `posts {limit: 10, session_id}`, one per session. An
  upvote of a post off the front page ("cold": reaches no instance) and of a post on it ("hot":
  every page shows the new count, so every instance is reached).

Per workload and live-instance count: write p50/p99 (µs), instances created per second (engine
instantiate), and at the end instances freed per second. Bytes per instance: what tracemalloc
sees the engine allocate for `--memory-instances` more instances (ResourceInstance, nodes,
index entries, dependency edges, the instance's output values), and the RSS growth, which also
counts what C extensions allocate (pyroaring bitmaps).

Prints a table per workload and writes bench/results/engine-instances-<date>.json.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyroaring import BitMap

from bench.report import print_table, write_json
from bench.workloads import item_value, items_service
from examples import hackernews
from graph import Engine, ResourceInstance, Service

COUNTS = (10, 100, 1_000, 10_000, 100_000)
QUICK_COUNTS = (10, 100, 1_000)

MakeBatch = Callable[[random.Random, int, int], Mapping[str, Any]]  # (rng, live, seq) -> batch


@dataclass
class Workload:
    name: str
    engine: Engine
    instance: Callable[[int], tuple[str, Any]]  # i -> (resource, params)
    writes: dict[str, MakeBatch]
    mirror: bool = False  # writes carry an explicit version (a follower applies the leader's)


# -- workloads -------------------------------------------------------------------------------


def slice_workload(keys: int, mirror: bool = False) -> Workload:
    if not mirror:
        engine = Engine.for_service(items_service(keys))
        return Workload(
            "slice",
            engine,
            lambda i: ("probe", {"key": i}),
            {
                "one key, one instance": lambda rng, live, seq: {
                    "items": [(rng.randrange(live), [{"seq": seq}])]
                }
            },
        )
    # Twice as many items as instances at most: the upper half is never an instance's key.
    engine = Engine.mirror(items_service(0), ["items"])
    engine.replace_all({"items": [(i, [item_value(i)]) for i in range(2 * keys)]}, 1)

    def delta(rng: random.Random, live: int, seq: int) -> Mapping[str, Any]:
        hits = rng.sample(range(live), 10)
        misses = [rng.randrange(keys, 2 * keys) for _ in range(90)]
        return {"items": [(k, [{"seq": seq}]) for k in [*hits, *misses]]}

    return Workload(
        "mirror",
        engine,
        lambda i: ("probe", {"key": i}),
        {"delta of 100 keys, 10 instances'": delta},
        mirror=True,
    )


def take_workload(keys: int) -> Workload:
    engine = Engine.for_service(items_service(keys))
    return Workload(
        "take",
        engine,
        lambda i: ("window", {"limit": 10 + i % 10, "viewer": i}),
        {
            "past every window": lambda rng, live, seq: {
                "items": [(rng.randrange(100, keys), [{"seq": seq}])]
            },
            "inside every window": lambda rng, live, seq: {
                "items": [(rng.randrange(10), [{"seq": seq}])]
            },
        },
    )


HN_USERS = 1000
HN_TOP = 10  # posts 0..9 lead by 10 upvotes each: an upvote never reorders the front page


def hackernews_service(posts: int, sessions: int) -> Service:
    upvotes = []
    for p in range(posts):
        count = 300 - 10 * p if p < HN_TOP else p % 5
        upvotes += [
            (f"post{p}:user{u}", [{"post": f"post{p}", "user": f"user{u}"}]) for u in range(count)
        ]
    return Service(
        name="hackernews-bench",
        inputs={
            "posts": [
                (f"post{p}", [{"title": f"Post {p}", "url": "https://example.com", "author": "u0"}])
                for p in range(posts)
            ],
            "users": [(f"user{u}", [{"name": f"User {u}"}]) for u in range(HN_USERS)],
            "upvotes": upvotes,
            "sessions": [(f"s{i}", [{"user": f"user{i % HN_USERS}"}]) for i in range(sessions)],
        },
        resources=hackernews.service.resources,
        create_graph=hackernews.create_graph,
    )


def hackernews_workload(posts: int, sessions: int) -> Workload:
    engine = Engine.for_service(hackernews_service(posts, sessions))
    toggled: set[str] = set()

    def upvote(post: int, user: int) -> Mapping[str, Any]:
        # A new upvote, or taking one back: a count moves by one either way.
        key = f"post{post}:user{user}:bench"
        if key in toggled:
            toggled.discard(key)
            return {"upvotes": [(key, [])]}
        toggled.add(key)
        return {"upvotes": [(key, [{"post": f"post{post}", "user": f"user{user}"}])]}

    return Workload(
        "hackernews",
        engine,
        lambda i: ("posts", {"limit": 10, "session_id": f"s{i}"}),
        {
            "cold upvote (off the front page)": lambda rng, live, seq: upvote(
                rng.randrange(HN_TOP, posts), rng.randrange(HN_USERS)
            ),
            "hot upvote (on every page)": lambda rng, live, seq: upvote(
                rng.randrange(HN_TOP), rng.randrange(HN_USERS)
            ),
        },
    )


BUILDERS: dict[str, Callable[[int], Workload]] = {
    "slice": lambda n: slice_workload(max(n, 1000)),
    "mirror": lambda n: slice_workload(max(n, 1000), mirror=True),
    "take": lambda n: take_workload(max(n, 1000)),
    "hackernews": lambda n: hackernews_workload(1000, max(n, 10)),
}


# -- measurements ----------------------------------------------------------------------------


def timed_writes(
    w: Workload, make: MakeBatch, live: int, writes: int, budget_s: float, rng: random.Random
) -> list[float]:
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    engine = w.engine
    while len(times) < writes and (len(times) < 5 or time.perf_counter() < deadline):
        batch = make(rng, live, len(times))
        version = engine.version + 1 if w.mirror else None
        t0 = time.perf_counter()
        engine.apply(batch, version)
        times.append(time.perf_counter() - t0)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def curve(w: Workload, counts: tuple[int, ...], writes: int, budget_s: float) -> dict[str, Any]:
    rng = random.Random(7)
    # The first instance on a collection may build its sorted index (once per collection, not
    # per instance): out of the creation rates.
    w.engine.release(w.engine.instantiate(*w.instance(max(counts) + 1)))
    live: list[ResourceInstance] = []
    points = []
    for count in counts:
        t0 = time.perf_counter()
        for i in range(len(live), count):
            live.append(w.engine.instantiate(*w.instance(i)))
        added = count - (points[-1]["instances"] if points else 0)
        create_s = time.perf_counter() - t0
        gc.collect()
        point: dict[str, Any] = {
            "instances": count,
            "create_per_s": added / create_s if create_s else 0.0,
            "writes": {},
        }
        for label, make in w.writes.items():
            times = timed_writes(w, make, count, writes, budget_s, rng)
            point["writes"][label] = {
                "p50_us": statistics.median(times) * 1e6,
                "p99_us": pct(times, 0.99) * 1e6,
                "n": len(times),
            }
        points.append(point)
    t0 = time.perf_counter()
    for inst in live:
        w.engine.release(inst)
    free_s = time.perf_counter() - t0
    return {"points": points, "free_per_s": len(live) / free_s if free_s else 0.0}


def _bitmaps(engine: Engine) -> int:
    """White-box: the pyroaring BitMaps among the dependency edges into the shared collections
    (their C buffers are invisible to tracemalloc; about 150 bytes each)."""
    stores = [*engine._inputs.values(), *engine._shared.values()]
    count = 0
    for store in {id(s): s for s in stores}.values():
        edges = getattr(store, "_edges", None) or getattr(store, "readers", None) or {}
        count += sum(
            isinstance(ids, BitMap) for per_key in edges.values() for ids in per_key.values()
        )
    return count


def bytes_per_instance(build: Callable[[int], Workload], count: int) -> dict[str, float]:
    """What tracemalloc sees the engine allocate for `count` more instances, after 100 exist
    (by then shared nodes and indexes are built); the params exist beforehand."""
    w = build(100 + count)
    keep = [w.engine.instantiate(*w.instance(i)) for i in range(100)]
    params = [w.instance(i) for i in range(100, 100 + count)]
    gc.collect()
    bitmaps = _bitmaps(w.engine)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep += [w.engine.instantiate(resource, p) for resource, p in params]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "tracemalloc_bytes_per_instance": (after - before) / count,
        "bitmaps_per_instance": (_bitmaps(w.engine) - bitmaps) / count,
    }


# -- report ----------------------------------------------------------------------------------


def table(name: str, result: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    points = result["points"]
    for label in points[0]["writes"]:
        for point in points:
            fig = point["writes"][label]
            rows.append(
                (
                    f"{label}: {point['instances']:,} live, p50 / p99 (µs)",
                    f"{fig['p50_us']:,.1f} / {fig['p99_us']:,.1f}",
                )
            )
        first, last = points[0]["writes"][label], points[-1]["writes"][label]
        rows.append(
            (
                f"{label}: p50 ratio {points[-1]['instances']:,} vs {points[0]['instances']:,}",
                f"{last['p50_us'] / first['p50_us']:.2f}x",
            )
        )
    for point in points:
        rows.append(
            (f"created per s (up to {point['instances']:,} live)", f"{point['create_per_s']:,.0f}")
        )
    rows.append(("freed per s", f"{result['free_per_s']:,.0f}"))
    memory = result.get("memory")
    if memory:
        traced = memory["tracemalloc_bytes_per_instance"]
        rows.append(("engine bytes per instance (tracemalloc)", f"{traced:,.0f}"))
        rows.append(("pyroaring bitmaps per instance", f"{memory['bitmaps_per_instance']:.2f}"))
    print_table(f"engine, many live instances: {name}", rows)


def run(
    counts: tuple[int, ...],
    workloads: list[str],
    writes: int = 1000,
    budget: float = 5.0,
    memory_instances: int | None = 5000,
) -> dict[str, Any]:
    """Every workload's curve over `counts` (and its bytes per instance unless None)."""
    results: dict[str, Any] = {"counts": list(counts)}
    for name in workloads:
        build = BUILDERS[name]
        result = curve(build(max(counts)), counts, writes, budget)
        gc.collect()
        if memory_instances and name != "mirror":
            result["memory"] = bytes_per_instance(build, memory_instances)
        results[name] = result
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10 .. 1,000 instances")
    parser.add_argument("--counts", type=lambda s: tuple(int(x) for x in s.split(",")))
    parser.add_argument("--workloads", default=",".join(BUILDERS))
    parser.add_argument("--writes", type=int, default=1000, help="writes per point at most")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per point at most")
    parser.add_argument("--memory-instances", type=int, default=5000)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args(argv)
    counts = args.counts or (QUICK_COUNTS if args.quick else COUNTS)
    memory = None if args.no_memory else args.memory_instances
    names = args.workloads.split(",")
    results = run(counts, names, args.writes, args.budget, memory)
    for name in names:
        table(name, results[name])
    write_json("engine-instances", results)
    return results


if __name__ == "__main__":
    main()
