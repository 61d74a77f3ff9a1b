"""PNG plots of a bench/run_all.py result (matplotlib, from the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"skiff": "tab:blue", "skip": "tab:orange"}


def _cdf(ax: Any, samples: list[float], label: str, **style: Any) -> None:
    if not samples:
        return
    ordered = sorted(samples)
    n = len(ordered)
    ax.plot(ordered, [(i + 1) / n for i in range(n)], label=label, **style)


def draw(result: dict[str, Any], folder: Path) -> list[Path]:
    """Write every plot the result has data for into `folder`; return the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    meta = f"{result['date'][:10]} · {result['machine']['cpus']} CPUs" + (
        " · quick" if result["quick"] else ""
    )
    r = result["results"]

    def save(fig: Any, name: str, title: str) -> None:
        fig.suptitle(f"{title}\n{meta}", fontsize=10)
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # Latency CDFs.
    fig, ax = plt.subplots(figsize=(7, 4.2))
    curves = [
        ("wide_http", "skiff", "wide graph, skiff node", "-"),
        ("wide_compare", "skiff", "wide graph (Skip size), skiff node", "--"),
        ("wide_compare", "skip", "wide graph (Skip size), Skip", "--"),
        ("hackernews", "skiff", "hackernews, skiff node", ":"),
        ("hackernews", "skip", "hackernews, Skip", ":"),
        ("instances", "skiff", "10k instances, skiff follower", "-."),
        ("instances", "skip", "10k instances, Skip", "-."),
    ]
    drawn = False
    for step, system, label, style in curves:
        data = r.get(step, {}).get(system)
        if data and data.get("latency_ms"):
            if step == "instances":
                label = f"{data['instances']:,}" + label.removeprefix("10k")
            _cdf(ax, data["latency_ms"], label, color=COLORS[system], linestyle=style)
            drawn = True
    follower = r.get("replication_lag", {}).get("write_sse_via_follower_ms")
    if follower:
        _cdf(ax, follower, "items, via follower (leader write)", color="tab:green")
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.set_xlabel("write → SSE update (ms, log)")
        ax.set_ylabel("fraction of writes")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "latency_cdf.png", "write→SSE latency CDFs")
    else:
        plt.close(fig)

    # Ingest throughput.
    bars = []
    for step, name in (("wide_http", "wide (skiff size)"), ("wide_compare", "wide (Skip size)"),
                       ("hackernews", "hackernews")):  # fmt: skip
        for system in ("skiff", "skip"):
            data = r.get(step, {}).get(system)
            if data and "throughput_keys_per_s" in data:
                bars.append((f"{name}\n{system}", data["throughput_keys_per_s"], system))
    if bars:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([b[0] for b in bars], [b[1] for b in bars], color=[COLORS[b[2]] for b in bars])
        ax.set_ylabel("key updates / s (100-key PATCH batches)")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        save(fig, "ingest.png", "ingest throughput")

    # Fan-out time vs subscribers.
    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = [
        ("fanout", "skiff", "skiff node", "o-"),
        ("fanout", "skip", "Skip", "s-"),
    ]
    drawn = False
    for step, key, label, style in series:
        rows = r.get(step, {}).get(key)
        if rows:
            xs = [row["subscribers"] for row in rows]
            ax.plot(xs, [row["last_ms"] for row in rows], style, label=label)
            drawn = True
    proxy_fanout = r.get("proxy", {}).get("fanout")
    if proxy_fanout:
        n = proxy_fanout["subscribers"]
        for key, label, marker in (("direct", "skiff follower, direct", "^"),
                                   ("proxy", "skiff through the proxy", "v")):  # fmt: skip
            ax.plot([n], [proxy_fanout[key]["last_p50_ms"]], marker, markersize=9, label=label)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers of one instance")
        ax.set_ylabel("write → last subscriber (ms, median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "fanout.png", "fan-out: one write to N subscribers")
    else:
        plt.close(fig)

    # RSS vs concurrent streams.
    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for step, key, role, label in (
        ("fanout", "skiff", "node", "skiff node, one shared instance"),
        ("fanout", "skip", "node", "Skip, one stream each"),
    ):
        rows = r.get(step, {}).get(key)
        if rows:
            xs = [row["subscribers"] for row in rows]
            ax.plot(xs, [row["rss_bytes"][role] / 2**20 for row in rows], "o-", label=label)
            drawn = True
    idle = r.get("proxy", {}).get("streams")
    if idle:
        for key, role, label in (
            ("direct", "follower", "skiff follower, idle streams (direct)"),
            ("proxy", "follower", "skiff follower, idle streams (via proxy)"),
            ("proxy", "proxy", "skiff proxy, idle streams"),
        ):
            curve = idle[key]["rss_curve"]
            xs = [point["streams"] for point in curve]
            ax.plot(xs, [point["rss_bytes"][role] / 2**20 for point in curve], "^:", label=label)
            drawn = True
    for system, label in (("skiff_node", "skiff node, distinct instances"),
                          ("skip", "Skip, distinct instances")):  # fmt: skip
        data = r.get("instances", {}).get(system)
        if data:
            role = "node"
            xs = [p["streams"] for p in data["rss_curve"]]
            ys = [p["rss_bytes"][role] / 2**20 for p in data["rss_curve"]]
            ax.plot(xs, ys, "s--", label=label)
            drawn = True
    if drawn:
        ax.set_xlabel("concurrent SSE streams")
        ax.set_ylabel("RSS (MiB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "rss_streams.png", "memory vs concurrent streams")
    else:
        plt.close(fig)

    # Write→SSE as live instances grow (each write reaches one of them), and the engine alone.
    inst = r.get("instances", {})
    engine = r.get("engine_instances", {}).get("slice", {}).get("points")
    if any(inst.get(k, {}).get("curve") for k in ("skiff", "skiff_node", "skiff_proxy", "skip")):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for key, label, style, color in (
            ("skiff_node", "skiff, one node", "o-", "tab:blue"),
            ("skiff_proxy", "skiff, follower behind the proxy", "s-", "tab:green"),
            ("skiff", "skiff, follower (direct)", "^:", "tab:purple"),
            ("skip", "Skip 0.0.15", "o--", COLORS["skip"]),
        ):
            curve = inst.get(key, {}).get("curve")
            if curve:
                xs = [point["instances"] for point in curve]
                ax.plot(xs, [point["latency_p50_ms"] for point in curve], style, label=label,
                        color=color)  # fmt: skip
        if engine:
            label = next(iter(engine[0]["writes"]))
            xs = [point["instances"] for point in engine]
            ys = [point["writes"][label]["p50_us"] / 1e3 for point in engine]
            ax.plot(xs, ys, "d-.", color="tab:gray", label="skiff engine alone, in process")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("live distinct resource instances (one SSE reader each)")
        ax.set_ylabel("write → SSE p50 (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "instances_latency.png", "a write that changes one instance, as instances grow")

    # Follower bootstrap vs state size.
    rows = r.get("bootstrap", {}).get("rows")
    if rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([row["keys"] for row in rows], [row["median_s"] for row in rows], "o-")
        ax.set_xscale("log")
        ax.set_xlabel("state size (keys of ~100 B)")
        ax.set_ylabel("follower start → ready (s, median)")
        ax.grid(True, which="both", alpha=0.3)
        save(fig, "bootstrap.png", "follower bootstrap time vs state size")

    # Replication lag under load.
    rates = r.get("replication_lag", {}).get("rates")
    if rates:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [int(k) for k in rates]
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            ys = []
            for k in rates:
                s = sorted(rates[k])
                ys.append(s[min(len(s) - 1, int(len(s) * q))] if s else float("nan"))
            ax.plot(xs, ys, "o-", label=label)
        ax.set_xlabel("key updates / s into the leader (100-key batches)")
        ax.set_ylabel("leader write → follower SSE (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend()
        save(fig, "replication_lag.png", "replication lag under load")
    return written
