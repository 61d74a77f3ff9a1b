"""The short seeded chaos run of `make test` (`make chaos` runs long ones): faults of every
kind against a real cluster, then docs/reliability.md's invariants."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.failover_fault import SENTINEL_FAULTS
from tests.chaos.scenario import FAULTS, Scenario

pytestmark = pytest.mark.timeout(170)


async def test_a_short_seeded_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    seed = int(os.environ.get("SEED", "20261129"))
    scenario = Scenario(seed, tmp_path, faults=len(FAULTS))
    report = await scenario.run(each_once=True)
    print(report.to_json())
    assert not report.violations, report.to_json()
    assert report.acked_batches > 0 and report.reader_events > 0


@pytest.mark.failover
async def test_a_short_seeded_chaos_run_on_sentinel_keeps_every_invariant(tmp_path: Path) -> None:
    seed = int(os.environ.get("SEED", "20261206"))
    scenario = Scenario(seed, tmp_path, faults=len(SENTINEL_FAULTS), topology="sentinel")
    report = await scenario.run(each_once=True)
    print(report.to_json())
    assert not report.violations, report.to_json()
    assert report.fault_counts["redis_failover"] == 1
    assert report.acked_batches > 0 and report.reader_events > 0
