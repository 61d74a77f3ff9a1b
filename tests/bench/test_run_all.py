"""`bench/run_all.py --quick` end to end on a few steps: one table, one results file, the plots,
and the Skip side when Node and Skip's packages are there (`make bench-skip` installs them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bench import run_all, skip_runtime

pytestmark = pytest.mark.timeout(60)

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _run(tmp_path: Path, steps: str, *extra: str) -> dict[str, object]:
    plots = ["--plots", str(tmp_path / "plots")] if HAS_MATPLOTLIB else ["--no-plots"]
    out = tmp_path / "results.json"
    result = run_all.main(["--quick", "--only", steps, "--out", str(out), *plots, *extra])
    assert json.loads(out.read_text())["summary"] == [list(row) for row in result["summary"]]
    return result


def test_quick_path_prints_one_table_and_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _run(tmp_path, "graph,fanout")
    results = result["results"]
    assert isinstance(results, dict)
    assert all("error" not in step for step in results.values()), results
    assert results["graph"]["speedup"] > 1
    assert [row["subscribers"] for row in results["fanout"]["skiff"]] == [1, 10, 100]
    printed = capsys.readouterr().out
    assert printed.count("figure") == 1
    assert "fan-out 100 subs: last received (ms)" in printed
    if HAS_MATPLOTLIB:
        assert (tmp_path / "plots" / "fanout.png").stat().st_size > 0


def test_quick_path_side_by_side_with_skip(tmp_path: Path) -> None:
    reason = skip_runtime.unavailable_reason()
    if reason:
        pytest.skip(f"Skip's runtime is not here: {reason}")
    result = _run(tmp_path, "hackernews", "--skip")
    hackernews = result["results"]["hackernews"]  # type: ignore[index]
    assert "error" not in hackernews, hackernews
    assert hackernews["skip"]["latency_p50_ms"] > 0
    ratio_rows = [row for row in result["summary"] if row[0].startswith("hackernews")]  # type: ignore[union-attr]
    assert ratio_rows and all(row[3] for row in ratio_rows)
