"""`SEED=… make chaos`: seeded chaos scenarios, one after another, each printed as JSON.

    python -m tests.chaos.run --seed 7 --runs 5 --faults 25

Exits 1 when any run found an invariant violation; rerun its seed to reproduce it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.chaos.failover_fault import SENTINEL_FAULTS
from tests.chaos.scenario import FAULTS, Scenario


async def main(
    seed: int, runs: int, faults: int, kinds: tuple[str, ...] = FAULTS, topology: str = "single"
) -> int:
    totals: Counter[str] = Counter()
    failed: list[int] = []
    for run_seed in range(seed, seed + runs):
        # CHAOS_KEEP=1 keeps each run's process logs (printed as "logs") for a post-mortem.
        keep = os.environ.get("CHAOS_KEEP") == "1"
        tmp = Path(tempfile.mkdtemp(prefix=f"skiff-chaos-{run_seed}-"))
        report = await Scenario(run_seed, tmp, faults=faults, topology=topology).run(kinds)
        if keep:
            print(f"logs: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(report.to_json(), flush=True)
        totals.update(report.fault_counts)
        if report.violations:
            failed.append(run_seed)
    print(f"runs: {runs}, faults: {dict(totals)}, seeds with violations: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument(
        "--topology",
        choices=("single", "sentinel"),
        default="single",
        help="one Valkey behind a fault link per process, or a primary, a replica and three "
        "Sentinels (fault kinds: " + ", ".join(SENTINEL_FAULTS) + ")",
    )
    parser.add_argument("--kinds", default="", help="comma-separated fault kinds to draw from")
    args = parser.parse_args()
    known = SENTINEL_FAULTS if args.topology == "sentinel" else FAULTS
    kinds = tuple(k for k in args.kinds.split(",") if k) or known
    unknown = set(kinds) - set(known)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(known)}")
    sys.exit(asyncio.run(main(args.seed, args.runs, args.faults, kinds, args.topology)))
