"""Load through a proxy while a Redis fault happens, and what the clients saw of it.

    run = await under_load([proxy.url], fault, before_s=2, after_s=6)
    run.writer_outage_s()    # longest time without an acknowledged write, around the fault
    run.reader_outage_s()    # longest time an SSE reader saw no event, around the fault

Writers and readers are the chaos runs' (tests/chaos/clients.py): writers retry a batch with
its Idempotency-Key for up to 12 s and record every acknowledgement; readers hold an SSE stream
of `top`, reconnect with Last-Event-ID and check ordering as they go.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.clients import PARAMS, RESOURCE, ReaderLog, WriterLog, reader, writer
from tests.support.harness import Cluster, Proc


@dataclass
class TimedReaderLog(ReaderLog):
    #: time.monotonic() of every event applied.
    times: list[float] = field(default_factory=list)

    def apply(self, event: str, event_id: str | None, data: str) -> None:
        super().apply(event, event_id, data)
        if event_id is not None:
            self.times.append(time.monotonic())


@dataclass
class LoadRun:
    writers: list[WriterLog]
    readers: list[TimedReaderLog]
    fault_at: float = 0.0
    healed_at: float = 0.0
    ended_at: float = 0.0

    def acked_votes(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for log in self.writers:
            total += log.acked_votes()
        return total

    def unknown_votes(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for log in self.writers:
            total += log.unknown
        return total

    def writer_outage_s(self) -> float:
        """The longest gap between acknowledgements (any writer) from the fault to the end."""
        times = sorted(a.at for log in self.writers for a in log.acked)
        return _longest_gap(times, self.fault_at, self.ended_at)

    def reader_outage_s(self) -> float:
        """The longest gap between events of one reader from the fault to the end, worst reader."""
        return max(
            (_longest_gap(sorted(r.times), self.fault_at, self.ended_at) for r in self.readers),
            default=0.0,
        )

    def violations(self) -> list[str]:
        return [v for r in self.readers for v in r.violations]


def _longest_gap(times: list[float], start: float, end: float) -> float:
    before = [t for t in times if t <= start]
    points = [before[-1] if before else start, *[t for t in times if start < t <= end], end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


async def under_load(
    urls: list[str],
    fault: Callable[[], Awaitable[Any]],
    *,
    writers: int = 2,
    readers: int = 3,
    before_s: float = 2.0,
    after_s: float = 6.0,
    settle: Callable[[], Awaitable[Any]] | None = None,
    name: str = "w",
) -> LoadRun:
    """Writers and readers on `urls` (round-robin); `fault()` after `before_s`; stop writing
    `after_s` after it returns; then `settle()` (the cluster converging) while the readers
    still read, and one more second for them to receive the last events."""
    run = LoadRun(
        [WriterLog() for _ in range(writers)],
        [TimedReaderLog(f"{name}-r{i}") for i in range(readers)],
    )
    stop_writing, stop_reading, paused = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(writer(urls[i % len(urls)], log, f"{name}{i}", i, stop_writing))
        for i, log in enumerate(run.writers)
    ] + [
        asyncio.create_task(reader(urls[i % len(urls)], log, stop_reading, paused))
        for i, log in enumerate(run.readers)
    ]
    try:
        await asyncio.sleep(before_s)
        run.fault_at = time.monotonic()
        await fault()
        run.healed_at = time.monotonic()
        await asyncio.sleep(after_s)
        run.ended_at = time.monotonic()
        stop_writing.set()
        await asyncio.gather(*tasks[:writers])
        if settle is not None:
            await settle()
        await asyncio.sleep(1.0)  # the readers receive the last writes
    finally:
        stop_writing.set()
        stop_reading.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return run


async def snapshot_votes(url: str) -> dict[int, int]:
    """Votes per post as `url` serves them now (`top`, the readers' resource)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(f"{url}/v1/snapshot/{RESOURCE}", json=PARAMS)
        response.raise_for_status()
        return {v[0]["post"]: v[0]["votes"] for _, v in response.json() if v}


def check_writes(run: LoadRun, votes: dict[int, int], where: str) -> list[str]:
    """Every acknowledged vote counted at `where`; nothing beyond what was attempted."""
    acked, unknown = run.acked_votes(), run.unknown_votes()
    problems = []
    for post in set(acked) | set(votes):
        have = votes.get(post, 0)
        if have < acked[post]:
            problems.append(f"{where}: post {post} has {have} votes, {acked[post]} acknowledged")
        if have > acked[post] + unknown[post]:
            problems.append(f"{where}: post {post} has {have} votes, more than were written")
    return problems


async def leader_of(cluster: Cluster, names: tuple[str, ...], within: float = 30.0) -> Proc:
    """The candidate that leads (a standby answers its state 503)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for name in names:
            proc = cluster.procs[name]
            if not proc.alive():
                continue
            response = await cluster.http.get(proc.url + "/v1/admin/state")
            if response.status_code == 200 and response.json().get("role") == "leader":
                return proc
        await asyncio.sleep(0.2)
    raise AssertionError(f"none of {names} leads")


async def check_everywhere(
    run: LoadRun, cluster: Cluster, procs: list[Proc], leaders: tuple[str, ...]
) -> Proc:
    """No acknowledged write missing on the leader or a follower among `procs`, and every
    reader ended on the leader's state, in order. Returns the leader."""
    leader = await leader_of(cluster, leaders)
    problems = []
    for proc in (leader, *[p for p in procs if p.kind == "follower"]):
        problems += check_writes(run, await snapshot_votes(proc.url), proc.name)
    truth = await snapshot_votes(leader.url)
    for log in run.readers:
        if log.votes() != truth:
            problems.append(f"{log.name} ended on {log.votes()}, the leader has {truth}")
    problems += run.violations()
    assert not problems, problems
    return leader
