"""A chaos scenario's report (what ran, what the clients saw, the violations found) and the
per-process readings its invariants use."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Report:
    seed: int
    faults: list[str] = field(default_factory=list)
    fault_counts: Counter[str] = field(default_factory=Counter)
    acked_batches: int = 0
    acked_votes: int = 0
    unknown_votes: int = 0
    redis_lost_votes: int = 0  # lost by Redis in a documented everysec window
    retries: int = 0
    reader_events: int = 0
    reader_reconnects: int = 0
    streams_lost: int = 0  # stream ids that answered 404 after a FLUSHALL erased the registry
    epochs: int = 0
    converge_s: float = 0.0
    violations: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        fields = {**vars(self), "fault_counts": dict(self.fault_counts)}
        return json.dumps(fields, indent=2, default=str)


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


async def vote_counts(url: str) -> Counter[int]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        r = await http.post(f"{url}/v1/snapshot/top", json={"limit": 1000})
        r.raise_for_status()
        return Counter({values[0]["post"]: values[0]["votes"] for _k, values in r.json()})
