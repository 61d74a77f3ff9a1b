"""Every benchmark in bench/, one progress bar, one summary table, one results file, the plots.

    make bench                                  # .venv/bin/python -m bench.run_all
    make bench-skip                             # the same, side by side with Skip 0.0.15
    .venv/bin/python -m bench.run_all --quick   # small sizes, a couple of minutes

Writes bench/results/<date>.json (`<date>-quick.json` with --quick) and PNG plots into
docs/img/ (bench/results/plots-quick/ with --quick). With --skip, each workload that has a Skip
counterpart also runs on Skip's runtime (bench/skip_runtime.py) and the table gains skiff/Skip
ratios from the same run; without Node or Skip's packages those steps are skipped with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (
    capacity_bench,
    engine_instances_bench,
    graph_bench,
    limits_bench,
    proxy_bench,
    replication_bench,
    skip_runtime,
)
from bench.cluster import proxy_available, serve
from bench.endpoints import Endpoint
from bench.fanout_bench import fanout_curve
from bench.hackernews_bench import hackernews_figures
from bench.http_bench import pct, wide_figures
from bench.instances_bench import many_instances, on_cluster
from bench.report import RESULTS
from bench.summary import print_summary, summary_rows

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Sizes:
    wide_keys: int  # the wide graph in-process and over HTTP (issue 2: 1M)
    compare_keys: int  # the wide graph side by side with Skip (its wasm build fails at 500k)
    graph_writes: int
    latency_writes: int
    ingest_seconds: float
    posts: int
    fanout_counts: tuple[int, ...]
    fanout_writes: int
    idle_streams: int
    proxy_fanout: int
    instance_counts: tuple[int, ...]
    instance_writes: int  # timed writes at each count
    engine_instance_counts: tuple[int, ...]
    bootstrap_sizes: tuple[int, ...]
    bootstrap_trials: int
    lag_rates: tuple[int, ...]
    lag_seconds: float
    limits_samples: int  # requests per variant (bench/limits_bench.py)


FULL = Sizes(
    wide_keys=1_000_000, compare_keys=100_000, graph_writes=2000, latency_writes=1000,
    ingest_seconds=10.0, posts=1000, fanout_counts=(1, 10, 100, 1000, 10_000), fanout_writes=5,
    idle_streams=10_000, proxy_fanout=1000, instance_counts=(10, 100, 1000, 10_000),
    instance_writes=300, engine_instance_counts=(10, 100, 1000, 10_000, 100_000),
    bootstrap_sizes=(10_000, 100_000, 1_000_000), bootstrap_trials=3,
    lag_rates=(1000, 5000, 10_000, 20_000), lag_seconds=10.0, limits_samples=1000,
)  # fmt: skip
QUICK = Sizes(
    wide_keys=20_000, compare_keys=20_000, graph_writes=200, latency_writes=100,
    ingest_seconds=2.0, posts=200, fanout_counts=(1, 10, 100), fanout_writes=3,
    idle_streams=200, proxy_fanout=100, instance_counts=(10, 100, 300), instance_writes=20,
    engine_instance_counts=(10, 100, 1000),
    bootstrap_sizes=(2_000, 20_000), bootstrap_trials=1, lag_rates=(1000, 5000), lag_seconds=2.0,
    limits_samples=100,
)  # fmt: skip


class Progress:
    """A plain-text progress bar on stderr: redrawn in place on a terminal, a line per step
    otherwise (CI logs)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()

    def show(self, label: str) -> None:
        width = 30
        filled = int(width * self.done / max(1, self.total))
        elapsed = time.monotonic() - self.start
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{elapsed:5.0f}s  {label}"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


Step = Callable[[Sizes, dict[str, Any]], dict[str, Any]]


def _skip_or_reason(with_skip: bool) -> str | None:
    if not with_skip:
        return "not requested (make bench-skip)"
    return skip_runtime.unavailable_reason()


def step_graph(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    engine, build_s = graph_bench.build(s.wide_keys)
    times = graph_bench.single_writes(engine, s.wide_keys, s.graph_writes)
    del engine
    gc.collect()
    memory = graph_bench.memory_per_key(min(s.wide_keys, 100_000 if ctx["quick"] else 1_000_000))
    p50 = statistics.median(times)
    return {
        "keys": s.wide_keys,
        "build_s": build_s,
        "write_p50_us": p50 * 1e6,
        "write_p99_us": pct(times, 0.99) * 1e6,
        "speedup": build_s / p50,
        "memory": memory,
    }


@contextlib.contextmanager
def _timed(
    starting: contextlib.AbstractContextManager[Endpoint],
) -> Iterator[tuple[Endpoint, float]]:
    """Enter `starting` (which starts a server) and yield it with the seconds it took."""
    t0 = time.perf_counter()
    with starting as endpoint:
        yield endpoint, time.perf_counter() - t0


def step_wide_http(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    with _timed(serve("bench.workloads:wide", s.wide_keys)) as (node, ready_s):
        figures = asyncio.run(
            wide_figures(node, s.wide_keys, s.latency_writes, s.ingest_seconds, 100, 2)
        )
    return {"keys": s.wide_keys, "skiff": figures | {"ready_s": ready_s}}


def step_wide_compare(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"keys": s.compare_keys}
    with _timed(serve("bench.workloads:wide", s.compare_keys)) as (node, ready_s):
        figures = asyncio.run(
            wide_figures(node, s.compare_keys, s.latency_writes, s.ingest_seconds, 100, 2)
        )
        out["skiff"] = figures | {"ready_s": ready_s}
    reason = _skip_or_reason(ctx["with_skip"])
    if reason:
        out["skip_unavailable"] = reason
        return out
    with _timed(skip_runtime.skip_service("wide", s.compare_keys)) as (skip, ready_s):
        figures = asyncio.run(
            wide_figures(skip, s.compare_keys, s.latency_writes, s.ingest_seconds, 100, 2)
        )
        out["skip"] = figures | {"ready_s": ready_s}
    return out


def step_hackernews(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"posts": s.posts}
    with serve("examples.hackernews:service") as node:
        out["skiff"] = asyncio.run(
            hackernews_figures(node, s.posts, s.latency_writes, s.ingest_seconds)
        )
    reason = _skip_or_reason(ctx["with_skip"])
    if reason:
        out["skip_unavailable"] = reason
        return out
    with skip_runtime.skip_service("hackernews", 0) as skip:
        out["skip"] = asyncio.run(
            hackernews_figures(skip, s.posts, s.latency_writes, s.ingest_seconds)
        )
    return out


def step_fanout(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    counts = list(s.fanout_counts)
    out: dict[str, Any] = {}
    with serve("bench.workloads:items", 1000) as node:
        out["skiff"] = asyncio.run(fanout_curve(node, node, counts, s.fanout_writes))
    reason = _skip_or_reason(ctx["with_skip"])
    if reason:
        out["skip_unavailable"] = reason
        return out
    with skip_runtime.skip_service("items", 1000) as skip:
        out["skip"] = asyncio.run(fanout_curve(skip, skip, counts, s.fanout_writes))
    return out


def step_proxy(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    """Issue 4's figures, from bench/proxy_bench.py: idle streams per follower and per proxy,
    the latency the proxy adds, fan-out through it."""
    reason = proxy_available()
    if reason:
        return {"unavailable": reason}
    soft, hard = proxy_bench.raise_fd_limit()
    # proxy_bench's own parser supplies every option not sized here.
    quick = ctx["quick"]
    sized = {
        "--streams": s.idle_streams,
        "--warm": max(1, s.idle_streams // 100),
        "--steps": 2 if quick else 10,
        "--settle": 0.3 if quick else 1.0,
        "--budget": 600.0,
        "--writes": s.latency_writes,
        "--loaded-writes": s.latency_writes // 5,
        "--fanout-subscribers": s.proxy_fanout,
        "--fanout-writes": s.fanout_writes * 6,
    }
    args = proxy_bench.parser().parse_args([str(x) for kv in sized.items() for x in kv])
    result = asyncio.run(proxy_bench.run(args, ["streams", "latency", "fanout"]))
    return result | {"fd_limit": {"soft": soft, "hard": hard}}


def step_instances(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    """Distinct instances, each with a reader: on one `skiff serve` node (like for like with
    Skip's one process), on a follower read directly, on a follower behind the proxy."""
    counts, writes = s.instance_counts, s.instance_writes
    out: dict[str, Any] = {}
    with serve("bench.workloads:items", max(counts)) as node:
        out["skiff_node"] = asyncio.run(many_instances(node, node, counts, writes))
    out["skiff"] = asyncio.run(on_cluster(counts, writes, via_proxy=False))
    reason = proxy_available()
    if reason is None:
        out["skiff_proxy"] = asyncio.run(on_cluster(counts, writes, via_proxy=True))
    reason = _skip_or_reason(ctx["with_skip"])
    if reason:
        out["skip_unavailable"] = reason
        return out
    with skip_runtime.skip_service("items", max(counts)) as skip:
        out["skip"] = asyncio.run(many_instances(skip, skip, counts, writes))
    return out


def step_engine_instances(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    """The engine alone, in process: a write's cost as live instances grow (to 100,000)."""
    counts = s.engine_instance_counts
    workloads = ["slice", "take", "hackernews"]
    return engine_instances_bench.run(counts, workloads, memory_instances=None)


def step_bootstrap(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    rows = asyncio.run(
        replication_bench.bootstrap_curve(list(s.bootstrap_sizes), s.bootstrap_trials)
    )
    return {"rows": rows}


def step_replication_lag(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    keys = 100_000 if not ctx["quick"] else 10_000
    return asyncio.run(replication_bench.lag_curve(keys, list(s.lag_rates), s.lag_seconds))


def step_capacity(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(capacity_bench.run(ctx["quick"], [1, 2, 3]))


def step_limits(s: Sizes, ctx: dict[str, Any]) -> dict[str, Any]:
    """Issue 16's client limits: off, the connection guard only, the guard and the rate limits."""
    return asyncio.run(limits_bench.measure(s.limits_samples))


STEPS: dict[str, Step] = {
    "graph": step_graph,
    "wide_http": step_wide_http,
    "wide_compare": step_wide_compare,
    "hackernews": step_hackernews,
    "fanout": step_fanout,
    "proxy": step_proxy,
    "instances": step_instances,
    "engine_instances": step_engine_instances,
    "bootstrap": step_bootstrap,
    "replication_lag": step_replication_lag,
    "capacity": step_capacity,
    "limits": step_limits,
}


def machine() -> dict[str, Any]:
    import psutil

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "node": skip_runtime.node_version(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a couple of minutes")
    parser.add_argument("--skip", action="store_true", help="also run Skip 0.0.15, with ratios")
    parser.add_argument("--only", help=f"comma-separated steps of: {', '.join(STEPS)}")
    parser.add_argument("--plots", type=Path, help="folder for the PNGs")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/<date>.json)")
    parser.add_argument(
        "--merge", type=Path, help="start from this results JSON and re-run only --only's steps"
    )
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(STEPS)
    unknown = set(names) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    ctx = {"quick": args.quick, "with_skip": args.skip}
    started = dt.datetime.now(dt.UTC)
    result: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m bench.run_all " + " ".join(argv if argv is not None else sys.argv[1:]),  # noqa: E501
        "quick": args.quick,
        "machine": machine(),
        "sizes": sizes.__dict__,
        "skip": {
            "requested": args.skip,
            "unavailable": _skip_or_reason(args.skip),
            "version": skip_runtime.VERSION,
        },
        "results": {},
        "seconds": {},
    }
    if args.merge:
        previous = json.loads(args.merge.read_text())
        result["results"] = previous["results"]
        result["seconds"] = previous.get("seconds", {})
        result["command"] = previous["command"] + " ; " + result["command"]
        args.out = args.out or args.merge
    progress = Progress(len(names))
    for name in names:
        progress.show(name)
        t0 = time.monotonic()
        try:
            result["results"][name] = STEPS[name](sizes, ctx)
        except Exception:  # a failed step is reported in the table; the others still run
            result["results"][name] = {"error": traceback.format_exc()}
        result["seconds"][name] = time.monotonic() - t0
        progress.done += 1
    progress.show("done")
    progress.finish()
    rows = summary_rows(result["results"])
    result["summary"] = rows
    stamp = started.strftime("%Y-%m-%d")
    out = args.out or RESULTS / (f"{stamp}-quick.json" if args.quick else f"{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print_summary(rows, args.skip)
    print(f"\nresults: {out}")
    if not args.no_plots:
        folder = args.plots or (RESULTS / "plots-quick" if args.quick else ROOT / "docs" / "img")
        try:
            from bench import plots

            for path in plots.draw(result, folder):
                print(f"plot: {path}")
        except ImportError as err:
            print(f"no plots: {err} (install the bench extra: pip install -e '.[bench]')")
    return result


if __name__ == "__main__":
    main()
