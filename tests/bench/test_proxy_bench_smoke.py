"""A tiny run of bench/proxy_bench.py (issue 4's figures), so it keeps working; the figures
come from the full run (docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from bench import proxy_bench

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _results_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr("bench.report.RESULTS", tmp_path)


def test_proxy_bench_runs_on_a_real_cluster() -> None:
    args = "--streams 40 --warm 4 --steps 2 --settle 0.1 --writes 10 --warmup 2 --loaded-writes 5"
    args += " --fanout-subscribers 10 --fanout-writes 3"
    result = proxy_bench.main(args.split())
    latency = result["latency"]
    for path in ("direct", "proxy_stream", "proxy"):
        assert len(latency["paths"][path]["samples_ms"]) == 10
        assert latency["paths"][path]["p50_ms"] > 0
    streams = result["streams"]
    for path in ("direct", "proxy"):
        assert streams[path]["streams"] == 40
        assert streams[path]["lost"] == 0
        assert streams[path]["stopped"] is None
    assert streams["proxy"]["while_held"]["paths"]["proxy"]["p50_ms"] > 0
    assert set(streams["proxy"]["rss_per_stream_bytes"]) == {"proxy", "follower"}
    fanout = result["fanout"]
    assert len(fanout["proxy"]["last_samples_ms"]) == 3
    assert fanout["proxy"]["last_p50_ms"] > 0
