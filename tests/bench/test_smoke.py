"""Tiny runs of the benchmarks, so they keep working; the figures come from `make bench`."""

from __future__ import annotations

import pytest

from bench import engine_instances_bench, graph_bench, http_bench, limits_bench

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _results_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr("bench.report.RESULTS", tmp_path)


def test_graph_bench_runs_and_reports_a_speedup() -> None:
    result = graph_bench.main(["--keys", "3000", "--writes", "30"])
    assert result["speedup"] > 1
    assert 0 < result["memory"]["overhead_per_key_per_collection"] < 10_000


def test_http_bench_runs_against_a_real_server() -> None:
    result = http_bench.main(["--keys", "2000", "--writes", "20", "--seconds", "1"])
    assert result["latency_p50_ms"] > 0
    assert result["throughput_keys_per_s"] > 0


def test_engine_instances_bench_runs() -> None:
    result = engine_instances_bench.main(
        ["--counts", "10,300", "--writes", "30", "--budget", "1", "--memory-instances", "200"]
    )
    for name in ("slice", "mirror", "take", "hackernews"):
        assert [p["instances"] for p in result[name]["points"]] == [10, 300]
        assert result[name]["free_per_s"] > 0
    assert 0 < result["slice"]["memory"]["tracemalloc_bytes_per_instance"] < 10_000


def test_limits_bench_runs_its_three_variants_without_a_refusal() -> None:
    # Any refusal (a 429) fails the bench's own assertions: it sets a burst above its run.
    result = limits_bench.main(["--samples", "20"])
    assert set(result["create_ms"]) == {"off", "guard", "limits"}
    assert set(result["node_open_ms"]) == {"off", "guard"}
    assert result["write_ms"]["off"]["ratio"] == 1.0
    # The rate script by hash: one EVALSHA per limited request, never EVAL.
    assert result["script_calls"]["evalsha"] >= 2 * 20
    assert result["script_calls"]["eval"] == 0
