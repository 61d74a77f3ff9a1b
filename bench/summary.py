"""The summary table of a bench/run_all.py result: one row a figure, skiff beside Skip with the
ratio where both ran."""

from __future__ import annotations

import statistics
from typing import Any

from bench.fanout_bench import per_stream_bytes
from bench.http_bench import pct
from bench.proxy_bench import rows as proxy_rows

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
        rows += [(f"proxy: {name.strip()}", value, "", "") for name, value in proxy_rows(px)]
    i = r.get("instances")
    if i and "error" not in i:
        rows += _instances_rows(i)
    e = r.get("engine_instances")
    if e and "error" not in e:
        rows += _engine_rows(e)
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
    lim = r.get("limits")
    if lim and "error" not in lim:
        for figure, label in (("create_ms", "create"), ("write_ms", "write")):
            off, on = lim[figure]["off"], lim[figure]["limits"]
            rows.append((f"proxy {label}, limits off / on, p50 (ms)",
                         f"{off['median']:.2f} / {on['median']:.2f}", "", ""))  # fmt: skip
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




# Figures of one instances variant: (label, result key).
_VARIANTS = (
    ("one node", "skiff_node"),
    ("follower", "skiff"),
    ("follower via proxy", "skiff_proxy"),
)


def _instances_rows(i: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    skip = i.get("skip", {})
    for label, key in _VARIANTS:
        data = i.get(key)
        if not data:
            continue
        n = data["instances"]
        pair = {"skiff": data, "skip": skip}
        name = f"{n:,} instances, {label}"
        _pair(rows, f"{name}: creation (/s)", pair, "creation_per_s", ",.0f")
        a = data["rss_per_instance_bytes"]["node"] / 1e3
        b = skip["rss_per_instance_bytes"]["node"] / 1e3 if skip else None
        rows.append((f"{name}: RSS per instance (KB)", f"{a:.1f}", _fmt(b, ".1f"), _ratio(a, b)))
        _pair(rows, f"{name}: write→SSE p50 (ms)", pair, "latency_p50_ms", ".2f")
        _pair(rows, f"{name}: write→SSE p99 (ms)", pair, "latency_p99_ms", ".2f")
    return rows


def _engine_rows(e: dict[str, Any]) -> list[Row]:
    """A write's cost with the most live instances against the fewest, per kind of write."""
    rows: list[Row] = []
    for name in ("slice", "take", "hackernews"):
        points = e.get(name, {}).get("points")
        if not points:
            continue
        first, last = points[0], points[-1]
        for label, top in last["writes"].items():
            low = first["writes"][label]["p50_us"]
            high = top["p50_us"]
            rows.append((
                f"engine {name}, {label}: p50 µs at {last['instances']:,} / {first['instances']:,}",
                f"{high:.1f} / {low:.1f} = {high / low:.2f}x", "", "",
            ))  # fmt: skip
    return rows
