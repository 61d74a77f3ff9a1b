"""Write load for cluster tests: unique vote keys, recording which writes were acknowledged."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class WriteLog:
    acked: Counter[int] = field(default_factory=Counter)  # post -> acknowledged votes
    failed: Counter[int] = field(default_factory=Counter)  # post -> votes not acknowledged
    versions: list[int] = field(default_factory=list)

    @property
    def total_acked(self) -> int:
        return sum(self.acked.values())


async def write_votes(
    urls: list[str],
    log: WriteLog,
    *,
    count: int,
    prefix: str,
    batch: int = 3,
    posts: int = 20,
    pause: float = 0.0,
    seed: int = 0,
    idempotent: bool = True,
) -> None:
    """`count` batches of `batch` new votes, round-robin over `urls`, each retried once with
    the same Idempotency-Key on failure (a retry never double-counts)."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=5.0) as http:
        for n in range(count):
            votes = [(f"{prefix}-{n}-{i}", rng.randrange(posts)) for i in range(batch)]
            body = [[key, [{"post": post}]] for key, post in votes]
            headers = {"Idempotency-Key": f"{prefix}-{n}"} if idempotent else {}
            ok = False
            for attempt in range(2):
                url = urls[(n + attempt) % len(urls)]
                try:
                    response = await http.patch(
                        f"{url}/v1/inputs/votes", json=body, headers=headers
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code == 200:
                    log.versions.append(response.json()["version"])
                    ok = True
                    break
                await asyncio.sleep(0.2)
            for _, post in votes:
                (log.acked if ok else log.failed)[post] += 1
            if pause:
                await asyncio.sleep(pause)


async def vote_counts(url: str, posts: int = 20) -> Counter[int]:
    """Votes per post as a node serves them (through the `top` resource)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{url}/v1/snapshot/top", json={"limit": 1000})
        response.raise_for_status()
        counts: Counter[int] = Counter()
        for _key, values in response.json():
            counts[values[0]["post"]] = values[0]["votes"]
        return counts


def check_no_write_lost(log: WriteLog, counts: Counter[int]) -> None:
    """Every acknowledged vote is counted; nothing beyond what was attempted is."""
    for post in set(log.acked) | set(log.failed) | set(counts):
        assert counts[post] >= log.acked[post], (post, counts[post], log.acked[post])
        assert counts[post] <= log.acked[post] + log.failed[post], (post, counts[post])
