"""A seeded chaos scenario: a real cluster (Valkey with AOF, two leader candidates, three
followers, the proxy), writers and SSE readers through the proxy, faults drawn from the seed,
then the invariants of docs/reliability.md checked once the faults heal.

Every skiff process reaches Redis through a FaultLink of its own (tests/chaos/faultproxy.py),
so network faults hit one component at a time. The same seed draws the same faults in the same
order (timing still varies with the machine, so a failure is reproduced by rerunning its seed,
usually but not always identically).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from skiff.dev.embedded_redis import EmbeddedRedis
from tests.chaos.clients import PARAMS, RESOURCE, ReaderLog, WriterLog, reader, writer
from tests.chaos.failover_fault import SENTINEL_FAULTS, SENTINEL_LEADER_ARGS, redis_failover
from tests.chaos.faultproxy import FaultLink
from tests.chaos.report import Report, fd_count, vote_counts
from tests.support.harness import Cluster, Proc, metric
from tests.support.redis_topologies import SentinelSet

NODE_ARGS = ("--heartbeat", "2")
LEADER_ARGS = (*NODE_ARGS, "--lease-ttl", "1.5", "--snapshot-every", "200")
FAULTS = (
    "kill9",
    "sigstop",
    "redis_restart_everysec",
    "redis_restart_always",
    "flushall",
    "net_delay",
    "net_drop",
    "net_partition",
    "slow_reader",
)
LEADERS = ("L1", "L2")
FOLLOWERS = ("F1", "F2", "F3")
# Stated bounds (docs/reliability.md).
CONVERGE_S = 30.0  # from the last heal to every node and reader agreeing
EVERYSEC_WINDOW_S = 2.0  # an acknowledged write this close before a Redis crash may be lost
FD_GROWTH = 32
TASK_GROWTH = 64


class Scenario:
    """`topology`: `single` (one Valkey, a fault link per process) or `sentinel` (a primary, a
    replica and three Sentinels: tests/chaos/failover_fault.py)."""

    def __init__(
        self, seed: int, tmp: Path, *, faults: int, readers: int = 4, topology: str = "single"
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.tmp = tmp
        self.fault_count = faults
        self.reader_count = readers
        self.report = Report(seed)
        self.redis = EmbeddedRedis(appendonly=True, appendfsync="always")
        self.sentinel = SentinelSet(appendonly=True) if topology == "sentinel" else None
        self.links: dict[str, FaultLink] = {}
        self.cluster: Cluster | None = None
        self.writers: list[WriterLog] = []
        self.readers: list[ReaderLog] = []
        self.paused = [asyncio.Event() for _ in range(readers)]
        self.stop_writers = asyncio.Event()
        self.stop_readers = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.everysec_crashes: list[float] = []
        self.restarted: set[str] = set()
        self.show_logs = os.environ.get("CHAOS_LOGS") == "1"

    # -- setup ----------------------------------------------------------------------------------
    async def _link(self, name: str) -> str:
        if self.sentinel is not None:
            return self.sentinel.url
        link = FaultLink(self.redis.port, seed=self.rng.randrange(1 << 30))
        await link.start()
        self.links[name] = link
        return f"redis://127.0.0.1:{link.port}/0"

    async def start(self) -> Cluster:
        leader_args = LEADER_ARGS
        if self.sentinel is not None:
            await self.sentinel.start()
            self.redis = self.sentinel.primary
            leader_args = (*LEADER_ARGS, *SENTINEL_LEADER_ARGS)
        else:
            await self.redis.start()
        cluster = self.cluster = Cluster("", self.tmp)
        for name in (*LEADERS, *FOLLOWERS, "proxy"):
            cluster.redis_url = await self._link(name)
            if name in LEADERS:
                await cluster.leader(name, *leader_args, ready=name == "L1")
            elif name in FOLLOWERS:
                await cluster.follower(name, *NODE_ARGS)
            else:
                await cluster.proxy(name, "--stream-ttl", "120")
        proxy = cluster.procs["proxy"].url
        for i in range(2):
            log = WriterLog()
            self.writers.append(log)
            self.tasks.append(
                asyncio.create_task(
                    writer(proxy, log, f"w{i}", self.seed * 10 + i, self.stop_writers)
                )
            )
        for i in range(self.reader_count):
            rlog = ReaderLog(f"r{i}")
            self.readers.append(rlog)
            self.tasks.append(
                asyncio.create_task(reader(proxy, rlog, self.stop_readers, self.paused[i]))
            )
        return cluster

    # -- faults ---------------------------------------------------------------------------------
    async def inject(self, kind: str) -> None:
        assert self.cluster is not None
        c, rng = self.cluster, self.rng
        hold = 0.5 + rng.random() * 2.5
        skiff = [*LEADERS, *FOLLOWERS, "proxy"]
        target = rng.choice(skiff)
        label = kind
        if kind == "kill9":
            label = f"kill9 {target}"
            c.kill(target)
            self.restarted.add(target)
            await asyncio.sleep(hold)
            await c.restart(target, ready=False)
        elif kind == "sigstop":
            label = f"sigstop {target}"
            c.signal(target, signal.SIGSTOP)
            await asyncio.sleep(hold)
            c.signal(target, signal.SIGCONT)
        elif kind.startswith("redis_restart"):
            fsync = "always" if kind.endswith("always") else "everysec"
            with contextlib.suppress(Exception):
                await _redis_command(self.redis, "CONFIG", "SET", "appendfsync", fsync)
            await asyncio.sleep(rng.random())
            self.redis.appendfsync = fsync  # type: ignore[assignment]
            if fsync == "everysec":
                self.everysec_crashes.append(time.monotonic())
            await self.redis.kill()
            await asyncio.sleep(hold)
            await self.redis.start()
        elif kind == "flushall":
            await _redis_command(self.redis, "FLUSHALL")
        elif kind == "redis_failover":
            assert self.sentinel is not None, "redis_failover needs the sentinel topology"
            self.redis = await redis_failover(self.sentinel, hold)
        elif kind.startswith("net_"):
            link = self.links[target]
            label = f"{kind} {target}"
            if kind == "net_delay":
                link.delay(0.05 + rng.random() * 0.5)
            elif kind == "net_drop":
                link.drop(0.3 + rng.random() * 0.5)
            else:
                link.partition()
            await asyncio.sleep(hold)
            link.heal()
        elif kind == "slow_reader":
            i = rng.randrange(len(self.paused))
            label = f"slow_reader r{i}"
            self.paused[i].set()
            await asyncio.sleep(hold * 3)
            self.paused[i].clear()
        self.report.faults.append(f"{label} ({hold:.1f}s)")
        self.report.fault_counts[kind] += 1

    async def run(self, kinds: tuple[str, ...] | None = None, *, each_once: bool = False) -> Report:
        """`each_once`: every kind once in the seed's order (the short run covers them all)."""
        kinds = kinds or (SENTINEL_FAULTS if self.sentinel is not None else FAULTS)
        plan = list(kinds)
        if each_once:
            self.rng.shuffle(plan)
        else:
            plan = [self.rng.choice(kinds) for _ in range(self.fault_count)]
        cluster = await self.start()
        try:
            await asyncio.sleep(2.0)
            before = await self.resources()
            for kind in plan:
                await self.inject(kind)
                await asyncio.sleep(0.5 + self.rng.random() * 1.5)
            for link in self.links.values():
                link.heal()
            for event in self.paused:
                event.clear()
            for name, proc in cluster.procs.items():
                if not proc.alive():
                    await cluster.restart(name, ready=False)
            healed = time.monotonic()
            await asyncio.sleep(1.0)
            self.stop_writers.set()  # writers finish their batch in flight; readers keep reading
            await asyncio.gather(*self.tasks[:2], return_exceptions=True)
            await self.check(cluster, healed)
            after = await self.resources()
            self.check_leaks(before, after)
        finally:
            self.stop_readers.set()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await cluster.close(show_logs=bool(self.report.violations) and self.show_logs)
            for link in self.links.values():
                await link.close()
            if self.sentinel is not None:
                await self.sentinel.close()
            else:
                await self.redis.close()
        return self.report

    # -- invariants -----------------------------------------------------------------------------
    async def leader(self, cluster: Cluster) -> Proc | None:
        for name in LEADERS:
            try:
                r = await cluster.http.get(cluster.procs[name].url + "/healthz", timeout=2)
                if r.status_code == 200 and r.json().get("role") == "leader":
                    return cluster.procs[name]
            except httpx.HTTPError:
                pass
        return None

    async def check(self, cluster: Cluster, healed: float) -> None:
        report = self.report
        deadline = healed + CONVERGE_S
        state: dict[str, Any] | None = None
        nodes: list[Proc] = []
        while time.monotonic() < deadline:
            leader = await self.leader(cluster)
            if leader is not None:
                nodes = [leader, *(cluster.procs[f] for f in FOLLOWERS)]
                try:
                    state = await cluster.converged(
                        nodes, within=max(0.5, deadline - time.monotonic())
                    )
                    break
                except AssertionError:
                    pass
            await asyncio.sleep(0.2)
        if state is None:
            report.violations.append(f"no leader and followers convergence within {CONVERGE_S}s")
            return
        # Every acknowledged write is in the leader and in every follower.
        acked: Counter[int] = Counter()
        unknown: Counter[int] = Counter()
        for log in self.writers:
            acked += log.acked_votes()
            unknown += log.unknown
            report.acked_batches += len(log.acked)
            report.retries += log.retries
        report.acked_votes = sum(acked.values())
        report.unknown_votes = sum(unknown.values())
        lost_allowance = self._everysec_allowance()
        for node in nodes:
            counts = await vote_counts(node.url)
            for post in set(acked) | set(unknown) | set(counts):
                missing = acked[post] - counts[post]
                if missing > 0:
                    if missing <= lost_allowance[post]:
                        if node is nodes[0]:
                            report.redis_lost_votes += missing
                    else:
                        report.violations.append(
                            f"{node.name}: post {post} has {counts[post]} votes, "
                            f"{acked[post]} acknowledged"
                        )
                if counts[post] > acked[post] + unknown[post]:
                    report.violations.append(
                        f"{node.name}: post {post} counted {counts[post]} votes, only "
                        f"{acked[post] + unknown[post]} sent (a write applied twice?)"
                    )
        # Every reader's final state equals the resource snapshot.
        proxy = cluster.procs["proxy"].url
        snapshot: dict[str, Any] = {}
        while True:
            try:
                r = await cluster.http.post(f"{proxy}/v1/snapshot/{RESOURCE}", json=PARAMS)
                snapshot = {json.dumps(k, sort_keys=True): v for k, v in r.json()}
                if all(rl.state == snapshot for rl in self.readers):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                for rl in self.readers:
                    if rl.state != snapshot:
                        report.violations.append(
                            f"{rl.name}: final state differs from the snapshot "
                            f"(reader at {rl.run}/{rl.version}, node at {state['epoch']}/"
                            f"{state['version']})"
                        )
                break
            await asyncio.sleep(0.2)
        report.converge_s = round(time.monotonic() - healed, 2)
        flushed = self.report.fault_counts["flushall"] > 0 or bool(self.everysec_crashes)
        for rl in self.readers:
            report.streams_lost += len(rl.lost)
            if rl.lost and not flushed:
                report.violations.append(f"{rl.name}: live stream ids answered 404: {rl.lost}")
            report.violations += rl.violations
            report.reader_events += rl.events
            report.reader_reconnects += rl.reconnects
        report.epochs = len({run for rl in self.readers for run in rl.runs_seen})

    def _everysec_allowance(self) -> Counter[int]:
        """Votes acknowledged within EVERYSEC_WINDOW_S before an everysec Redis crash."""
        allowance: Counter[int] = Counter()
        for log in self.writers:
            for ack in log.acked:
                if any(0 <= crash - ack.at <= EVERYSEC_WINDOW_S for crash in self.everysec_crashes):
                    allowance.update(ack.posts)
        return allowance

    async def resources(self) -> dict[str, dict[str, float]]:
        assert self.cluster is not None
        out: dict[str, dict[str, float]] = {}
        for name, proc in self.cluster.procs.items():
            if not proc.alive():
                continue
            out[name] = {"pid": proc.pid, "fds": fd_count(proc.pid)}
            with contextlib.suppress(httpx.HTTPError):
                text = (await self.cluster.http.get(proc.url + "/metrics", timeout=3)).text
                out[name]["tasks"] = metric(text, "skiff_asyncio_tasks")
        return out

    def check_leaks(
        self, before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
    ) -> None:
        self.report.resources = {"before": before, "after": after}  # type: ignore[dict-item]
        for name, b in before.items():
            a = after.get(name)
            if a is None or a["pid"] != b["pid"]:
                continue  # restarted: nothing to compare
            if a["fds"] > b["fds"] + FD_GROWTH:
                self.report.violations.append(f"{name}: fds grew {b['fds']} -> {a['fds']}")
            if "tasks" in a and "tasks" in b and a["tasks"] > b["tasks"] + TASK_GROWTH:
                self.report.violations.append(f"{name}: tasks grew {b['tasks']} -> {a['tasks']}")


async def _redis_command(server: EmbeddedRedis, *args: str) -> Any:
    from redis.asyncio import Redis

    client = Redis.from_url(server.url, socket_timeout=5)
    try:
        return await client.execute_command(*args)
    finally:
        await client.aclose()
