"""Engine benchmarks: incremental write vs from-scratch recompute, and memory per key.

    .venv/bin/python -m bench.graph_bench --keys 1000000

Prints a table and writes bench/results/graph-<date>.json.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from typing import Any

from bench.report import print_table, write_json
from bench.workloads import chain_service, wide_entry, wide_service
from graph import Engine


def build(keys: int) -> tuple[Engine, float]:
    service = wide_service(keys)
    start = time.perf_counter()
    engine = Engine.for_service(service)
    engine.instantiate("top", {"limit": 10})
    return engine, time.perf_counter() - start


def single_writes(engine: Engine, keys: int, n: int) -> list[float]:
    rng = random.Random(1)
    times = []
    for _ in range(n):
        i = rng.randrange(keys)
        t0 = time.perf_counter()
        engine.apply({"events": [wide_entry(i, rng.randrange(10**6))]})
        times.append(time.perf_counter() - t0)
    return times


def memory_per_key(keys: int) -> dict[str, float]:
    """Bytes of engine overhead per key per materialised collection, beyond the JSON values.

    The graph is input -> map(1:1) -> take(10) with the mapper re-using the value objects: two
    collections of `keys` keys each. The service (and so every key and value object) exists
    before tracing starts, so what tracemalloc sees the engine allocate is its own overhead:
    dict slots, value lists, contributions, indexes."""
    service = chain_service(keys)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine = Engine.for_service(service)
    engine.instantiate("top", {"limit": 10})
    gc.collect()
    engine_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del engine
    return {
        "engine_bytes": engine_bytes,
        "overhead_per_key_per_collection": engine_bytes / keys / 2,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args(argv)

    engine, build_s = build(args.keys)
    times = single_writes(engine, args.keys, args.writes)
    p50 = statistics.median(times)
    rows: list[tuple[str, str]] = [
        ("keys", f"{args.keys:,}"),
        ("from-scratch build (s)", f"{build_s:.2f}"),
        ("single-key write p50 (µs)", f"{p50 * 1e6:.1f}"),
        ("single-key write p99 (µs)", f"{sorted(times)[int(len(times) * 0.99)] * 1e6:.1f}"),
        ("speed-up vs recompute (x)", f"{build_s / p50:,.0f}"),
    ]
    result: dict[str, Any] = {
        "keys": args.keys,
        "build_s": build_s,
        "write_p50_s": p50,
        "speedup": build_s / p50,
    }
    del engine
    gc.collect()
    if not args.no_memory:
        mem = memory_per_key(args.keys)
        result["memory"] = mem
        rows.append(
            ("engine overhead B/key/collection", f"{mem['overhead_per_key_per_collection']:.0f}")
        )
    print_table("graph engine", rows)
    write_json("graph", result)
    return result


if __name__ == "__main__":
    main()
