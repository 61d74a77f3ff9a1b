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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import capacity_bench, graph_bench, proxy_bench, replication_bench, skip_runtime
from bench.cluster import cluster, proxy_available, serve
from bench.endpoints import Endpoint
from bench.fanout_bench import fanout_curve, per_stream_bytes
from bench.hackernews_bench import hackernews_figures
from bench.http_bench import pct, wide_figures
from bench.instances_bench import many_instances
from bench.report import RESULTS

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
    instances: int
    instance_writes: int
    bootstrap_sizes: tuple[int, ...]
    bootstrap_trials: int
    lag_rates: tuple[int, ...]
    lag_seconds: float


FULL = Sizes(
    wide_keys=1_000_000, compare_keys=100_000, graph_writes=2000, latency_writes=1000,
    ingest_seconds=10.0, posts=1000, fanout_counts=(1, 10, 100, 1000, 10_000), fanout_writes=5,
    idle_streams=10_000, proxy_fanout=1000, instances=10_000, instance_writes=200,
    bootstrap_sizes=(10_000, 100_000, 1_000_000), bootstrap_trials=3,
    lag_rates=(1000, 5000, 10_000, 20_000), lag_seconds=10.0,
)  # fmt: skip
QUICK = Sizes(
    wide_keys=20_000, compare_keys=20_000, graph_writes=200, latency_writes=100,
    ingest_seconds=2.0, posts=200, fanout_counts=(1, 10, 100), fanout_writes=3,
    idle_streams=200, proxy_fanout=100, instances=300, instance_writes=30,
    bootstrap_sizes=(2_000, 20_000), bootstrap_trials=1, lag_rates=(1000, 5000), lag_seconds=2.0,
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
    out: dict[str, Any] = {}

    async def run() -> dict[str, Any]:
        async with cluster("bench.workloads:items", "bench-items", s.instances) as c:
            follower = replace(c.followers[0], pids={"node": c.pids["follower1"]})
            return await many_instances(follower, c.leader, s.instances, s.instance_writes)

    out["skiff"] = asyncio.run(run())
    # The same on one `skiff serve` process: the like-for-like comparison with Skip's process.
    with serve("bench.workloads:items", s.instances) as node:
        out["skiff_node"] = asyncio.run(
            many_instances(node, node, s.instances, s.instance_writes)
        )
    reason = _skip_or_reason(ctx["with_skip"])
    if reason:
        out["skip_unavailable"] = reason
        return out
    with skip_runtime.skip_service("items", s.instances) as skip:
        out["skip"] = asyncio.run(many_instances(skip, skip, s.instances, s.instance_writes))
    return out


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


STEPS: dict[str, Step] = {
    "graph": step_graph,
    "wide_http": step_wide_http,
    "wide_compare": step_wide_compare,
    "hackernews": step_hackernews,
    "fanout": step_fanout,
    "proxy": step_proxy,
    "instances": step_instances,
    "bootstrap": step_bootstrap,
    "replication_lag": step_replication_lag,
    "capacity": step_capacity,
}


# -- the summary table ---------------------------------------------------------------------------
Row = tuple[str, str, str, str]  # figure, skiff, Skip, skiff/Skip


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}"


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _pair(
    rows: list[Row], name: str, data: dict[str, Any], field: str, spec: str, scale: float = 1.0
) -> None:
    a = data.get("skiff", {}).get(field)
    b = data.get("skip", {}).get(field)
    a = None if a is None else a * scale
    b = None if b is None else b * scale
    rows.append((name, _fmt(a, spec), _fmt(b, spec), _ratio(a, b)))


def summary_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    g = r.get("graph")
    if g and "error" not in g:
        rows.append((f"wide {g['keys']:,} keys: build from scratch (s)", f"{g['build_s']:.2f}", "", ""))  # noqa: E501
        rows.append(("wide: single-key write p50 (µs)", f"{g['write_p50_us']:.0f}", "", ""))
        rows.append(("wide: write speed-up vs recompute (x)", f"{g['speedup']:,.0f}", "", ""))
        per_key = g["memory"]["overhead_per_key_per_collection"]
        rows.append(("engine overhead (B/key/collection)", f"{per_key:.0f}", "", ""))
    w = r.get("wide_http")
    if w and "error" not in w:
        k = w["keys"]
        rows.append((f"wide {k:,}: write→SSE p50 (ms)", f"{w['skiff']['latency_p50_ms']:.2f}", "", ""))  # noqa: E501
        rows.append((f"wide {k:,}: write→SSE p99 (ms)", f"{w['skiff']['latency_p99_ms']:.2f}", "", ""))  # noqa: E501
        rows.append((f"wide {k:,}: ingest (keys/s)", f"{w['skiff']['throughput_keys_per_s']:,.0f}", "", ""))  # noqa: E501
    c = r.get("wide_compare")
    if c and "error" not in c:
        k = c["keys"]
        _pair(rows, f"wide {k:,}: start to ready (s)", c, "ready_s", ".2f")
        _pair(rows, f"wide {k:,}: write→SSE p50 (ms)", c, "latency_p50_ms", ".2f")
        _pair(rows, f"wide {k:,}: write→SSE p99 (ms)", c, "latency_p99_ms", ".2f")
        _pair(rows, f"wide {k:,}: ingest (keys/s)", c, "throughput_keys_per_s", ",.0f")
    h = r.get("hackernews")
    if h and "error" not in h:
        _pair(rows, "hackernews: write→SSE p50 (ms)", h, "latency_p50_ms", ".2f")
        _pair(rows, "hackernews: write→SSE p99 (ms)", h, "latency_p99_ms", ".2f")
        _pair(rows, "hackernews: upvotes ingested (/s)", h, "throughput_keys_per_s", ",.0f")
    f = r.get("fanout")
    if f and "error" not in f:
        skip_rows = {row["subscribers"]: row for row in f.get("skip", [])}
        for row in f["skiff"]:
            n = row["subscribers"]
            other = skip_rows.get(n, {}).get("last_ms")
            rows.append((f"fan-out {n:,} subs: last received (ms)", f"{row['last_ms']:.1f}",
                         _fmt(other, ".1f"), _ratio(row["last_ms"], other)))  # fmt: skip
        a = per_stream_bytes(f["skiff"], "node")
        b = per_stream_bytes(f["skip"], "node") if f.get("skip") else None
        rows.append(("fan-out: RSS per stream (KB)", _fmt(a and a / 1e3, ".1f"),
                     _fmt(b and b / 1e3, ".1f"), _ratio(a, b)))  # fmt: skip
    px = r.get("proxy")
    if px and "error" not in px and "unavailable" not in px:
        rows += [(f"proxy: {name.strip()}", value, "", "") for name, value in proxy_bench.rows(px)]
    i = r.get("instances")
    if i and "error" not in i:
        n = i["skiff"]["instances"]
        _pair(rows, f"{n:,} instances: creation (/s)", i, "creation_per_s", ",.0f")
        a = i["skiff"]["rss_per_instance_bytes"]["node"] / 1e3
        b = i["skip"]["rss_per_instance_bytes"]["node"] / 1e3 if "skip" in i else None
        rows.append((f"{n:,} instances: RSS per instance (KB)", f"{a:.1f}", _fmt(b, ".1f"), _ratio(a, b)))  # noqa: E501
        _pair(rows, f"{n:,} instances: write→SSE p50 (ms)", i, "latency_p50_ms", ".2f")
        _pair(rows, f"{n:,} instances: write→SSE p99 (ms)", i, "latency_p99_ms", ".2f")
        if "skiff_node" in i:
            node = {"skiff": i["skiff_node"], "skip": i.get("skip", {})}
            a = i["skiff_node"]["rss_per_instance_bytes"]["node"] / 1e3
            rows.append((f"{n:,} instances, one node: RSS/instance (KB)", f"{a:.1f}", _fmt(b, ".1f"), _ratio(a, b)))  # noqa: E501
            _pair(rows, f"{n:,} instances, one node: write→SSE p50 (ms)", node, "latency_p50_ms", ".2f")  # noqa: E501
            _pair(rows, f"{n:,} instances, one node: write→SSE p99 (ms)", node, "latency_p99_ms", ".2f")  # noqa: E501
    b = r.get("bootstrap")
    if b and "error" not in b:
        for row in b["rows"]:
            rows.append((f"follower bootstrap, {row['keys']:,} keys (s)", f"{row['median_s']:.2f}", "", ""))  # noqa: E501
    lag = r.get("replication_lag")
    if lag and "error" not in lag:
        via = lag["write_sse_via_follower_ms"]
        rows.append(("write→SSE via follower p50 (ms)", f"{statistics.median(via):.2f}", "", ""))
        for rate, samples in lag["rates"].items():
            if samples:
                rows.append((f"lag at {int(rate):,} keys/s p50 / p99 (ms)",
                             f"{statistics.median(samples):.1f} / {pct(samples, 0.99):.1f}", "", ""))  # fmt: skip # noqa: E501
        redis = lag["redis"]
        rows.append(("Redis bytes/version (deltas)", f"{redis['deltas_bytes_per_version']:,.0f}", "", ""))  # noqa: E501
    cap = r.get("capacity")
    if cap and "error" not in cap:
        costs = cap["costs"]
        rows.append(("leader µs/version + µs/key", f"{costs['leader_per_version'] * 1e6:.0f} + {costs['leader_per_key'] * 1e6:.1f}", "", ""))  # noqa: E501
        rows.append(("follower µs/delta + µs/key", f"{costs['follower_per_version'] * 1e6:.0f} + {costs['follower_per_key'] * 1e6:.1f}", "", ""))  # noqa: E501
        rows.append(("SSE µs/event/subscriber", f"{costs['sse_per_event'] * 1e6:.1f}", "", ""))
        rows.append(("proxy ns/byte relayed", f"{costs['proxy_per_byte'] * 1e9:.0f}", "", ""))
        rows.append(("Redis µs/version + µs/key", f"{costs['redis_per_version'] * 1e6:.0f} + {costs['redis_per_key'] * 1e6:.2f}", "", ""))  # noqa: E501
        for v in cap["validation"]:
            errors = [
                abs(v["predicted"][role] - v["measured"][role]) / v["measured"][role]
                for role in v["predicted"]
                if v["measured"][role] > 0.01
            ]
            total_p, total_m = sum(v["predicted"].values()), sum(v["measured"][k] for k in v["predicted"])  # noqa: E501
            rows.append((f"model, {v['followers']} follower(s): CPU pred/meas (err)",
                         f"{total_p:.2f}/{total_m:.2f} ({max(errors, default=0) * 100:.0f}%)", "", ""))  # fmt: skip # noqa: E501
        for v in cap.get("overload", {}).get("rows", []):
            total_p = sum(v["predicted"].values())
            delivered = v["events_per_s"] / max(1.0, v["events_demanded_per_s"])
            rows.append((f"overload, {v['followers']} follower(s): CPU pred, events delivered",
                         f"{total_p:.2f}, {delivered * 100:.0f}%", "", ""))  # fmt: skip
    for name, data in r.items():
        if isinstance(data, dict) and "error" in data:
            rows.append((f"{name}: FAILED", data["error"].splitlines()[-1][:40], "", ""))
    return rows


def print_summary(rows: list[Row], with_skip: bool) -> None:
    head = ("figure", "skiff", "Skip", "skiff/Skip") if with_skip else ("figure", "skiff", "", "")
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(4)]
    line = "  ".join(
        h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head)
    )
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)))  # noqa: E501


def markdown_table(rows: list[Row]) -> str:
    out = ["| figure | skiff | Skip 0.0.15 | skiff/Skip |", "|---|---:|---:|---:|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


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
