"""Issue 4's multi-process tests: real `skiff leader/follower/proxy` processes, a real Redis,
many SSE clients through the proxy while followers join, crash and drain."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from broker.client import Init, SkiffClient
from broker.store.keyspace import Keyspace
from proxy.stream_ids import parse
from tests.support.cluster_services import service
from tests.support.harness import Cluster, Proc
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, check_no_write_lost, vote_counts, write_votes

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

KEYS = Keyspace(service.name)
FOLLOWER = ("--drain-window", "1")


@pytest_asyncio.fixture
async def redis(redis_server_factory: ServerFactory) -> AsyncIterator[str]:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    yield server.url


@pytest_asyncio.fixture
async def cluster(redis: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(redis, tmp_path)
    failed = True
    try:
        yield c
        failed = False
    finally:
        await c.close(show_logs=failed)


async def start_proxy(cluster: Cluster, *extra: str, **kwargs: Any) -> Proc:
    return await cluster.proxy("proxy", "--service", service.name, *extra, **kwargs)


@dataclass
class Watcher:
    """One SSE client through the proxy, keeping the resource's state as events arrive."""

    resource: str
    params: dict[str, Any]
    stream_id: str = ""
    state: dict[str, list[Any]] = field(default_factory=dict)
    last: tuple[str, int] | None = None
    regressions: list[str] = field(default_factory=list)
    error: BaseException | None = None

    async def run(self, client: SkiffClient) -> None:
        try:
            self.stream_id = await client.create_stream(self.resource, self.params)
            async for event in client.events(self.stream_id, max_attempts=40, backoff_s=0.05):
                if self.last is not None and event.run == self.last[0]:
                    if event.version < self.last[1]:
                        self.regressions.append(f"{self.last} -> {event.version}")
                self.last = (event.run, event.version)
                if isinstance(event, Init):
                    self.state = {}
                for key, values in event.entries:
                    if values:
                        self.state[_key(key)] = values
                    else:
                        self.state.pop(_key(key), None)
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # recorded: a 404 or a give-up fails the test
            self.error = err


def _key(key: Any) -> str:
    # Keys may be lists (the ranked collection): compare them as canonical JSON.
    return json.dumps(key)


def watcher_specs(count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    return [
        ("top", {"limit": rng.randrange(1, 8)}) if rng.random() < 0.5
        else ("post", {"post": rng.randrange(20)})
        for _ in range(count)
    ]  # fmt: skip


async def watch_all(
    proxy_url: str, specs: list[tuple[str, dict[str, Any]]]
) -> tuple[SkiffClient, list[Watcher], list[asyncio.Task[None]]]:
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=None))
    client = SkiffClient(proxy_url, transport=transport, timeout=10)
    watchers = [Watcher(resource, params) for resource, params in specs]
    tasks = [asyncio.create_task(w.run(client)) for w in watchers]
    for _ in range(400):
        if all(w.last is not None or w.error is not None for w in watchers):
            break
        await asyncio.sleep(0.05)
    assert all(w.last is not None for w in watchers), [w.error for w in watchers if w.error]
    return client, watchers, tasks


async def settle(proxy_url: str, watchers: list[Watcher], within: float = 30.0) -> None:
    """Every client ends with exactly the resource's current snapshot."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(base_url=proxy_url, timeout=10) as http:
        while True:
            snapshots: dict[str, Any] = {}
            pending = []
            for w in watchers:
                assert w.error is None, f"{w.stream_id}: {w.error!r}"
                key = f"{w.resource}:{sorted(w.params.items())}"
                if key not in snapshots:
                    response = await http.post(f"/v1/snapshot/{w.resource}", json=w.params)
                    snapshots[key] = {_key(k): v for k, v in response.json()}
                if w.state != snapshots[key]:
                    pending.append(w)
            if not pending:
                return
            if loop.time() > deadline:
                raise AssertionError(f"{len(pending)} clients differ from the snapshot")
            await asyncio.sleep(0.2)


async def stop_watchers(client: SkiffClient, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


async def test_clients_survive_scale_up_and_a_killed_follower(cluster: Cluster) -> None:
    leader = await cluster.leader("L1")
    followers = [await cluster.follower(f"F{i}", *FOLLOWER) for i in (1, 2, 3)]
    proxy = await start_proxy(cluster)
    client, watchers, tasks = await watch_all(proxy.url, watcher_specs(200, seed=4))
    try:
        hosts = {parse(w.stream_id).node_id for w in watchers}
        assert hosts == {"F1", "F2", "F3"}
        log = WriteLog()
        load = asyncio.create_task(
            write_votes([proxy.url], log, count=80, prefix="a", pause=0.02, seed=5)
        )
        # Scale up under load: the new follower takes new streams.
        await cluster.follower("F4", *FOLLOWER)
        async with httpx.AsyncClient(base_url=proxy.url) as http:
            for _ in range(40):
                health = (await http.get("/v1/admin/nodes")).json()
                if any(n["node_id"] == "F4" and n["serving"] for n in health["nodes"]):
                    break
                await asyncio.sleep(0.1)
            fresh = [(await http.post("/v1/streams/top", json={"limit": 100 + n})).text
                     for n in range(4)]  # fmt: skip
        assert {parse(s).node_id for s in fresh} == {"F4"}
        # Kill -9 a follower: its clients reconnect through the proxy and are re-homed.
        victims = [w for w in watchers if parse(w.stream_id).node_id == "F1"]
        assert victims
        cluster.kill("F1")
        await load
        await write_votes([proxy.url], log, count=10, prefix="b", seed=6)
        await settle(proxy.url, watchers)
        assert all(w.error is None for w in watchers)  # no 404, no give-up
        assert [w.regressions for w in watchers if w.regressions] == []
        await cluster.converged([leader, *followers[1:]])
        check_no_write_lost(log, await vote_counts(proxy.url))
    finally:
        await stop_watchers(client, tasks)


async def test_sigterm_drains_a_follower_which_exits_0(cluster: Cluster) -> None:
    await cluster.leader("L1")
    await cluster.follower("F1", *FOLLOWER)
    proxy = await start_proxy(cluster)
    client, watchers, tasks = await watch_all(proxy.url, watcher_specs(30, seed=7))
    try:
        assert {parse(w.stream_id).node_id for w in watchers} == {"F1"}
        await cluster.follower("F2", *FOLLOWER)
        await asyncio.sleep(1.5)  # the proxy sees F2
        log = WriteLog()
        load = asyncio.create_task(
            write_votes([proxy.url], log, count=40, prefix="a", pause=0.03, seed=8)
        )
        assert await cluster.terminate("F1", within=20) == 0
        await load
        await settle(proxy.url, watchers)
        assert all(w.error is None for w in watchers)
        assert [w.regressions for w in watchers if w.regressions] == []
        async with httpx.AsyncClient(base_url=proxy.url) as http:
            nodes = (await http.get("/v1/admin/nodes")).json()["nodes"]
        assert "F1" not in {n["node_id"] for n in nodes}  # deregistered
    finally:
        await stop_watchers(client, tasks)


async def test_leader_change_under_idempotent_writes_loses_and_doubles_nothing(
    cluster: Cluster, redis: str
) -> None:
    lease = ("--lease-ttl", "1.5")
    await cluster.leader("L1", *lease)
    standby = await cluster.leader("L2", *lease, ready=False)
    follower = await cluster.follower("F1", *FOLLOWER)
    proxy = await start_proxy(cluster)
    log = WriteLog()
    load = asyncio.create_task(
        write_votes([proxy.url], log, count=120, prefix="k", pause=0.02, seed=9)
    )
    await asyncio.sleep(0.8)
    cluster.kill("L1")
    await load
    await cluster.wait_ready(standby)
    await cluster.converged([standby, follower])
    check_no_write_lost(log, await vote_counts(proxy.url))
    # Each Idempotency-Key appears at most once in the input log: nothing applied twice.
    redis_client = Redis.from_url(redis)
    try:
        entries = await redis_client.xrange(KEYS.inputs)
        keys = [fields[b"idem"] for _, fields in entries if b"idem" in fields]
        assert len(keys) == len(set(keys))
    finally:
        await redis_client.aclose()
    assert log.total_acked >= 3 * 100  # most writes were acknowledged despite the change


async def test_token_guards_writes_at_the_proxy_and_the_nodes(cluster: Cluster) -> None:
    env = {"SKIFF_CONTROL_TOKEN": "t0k3n"}
    leader = await cluster.leader("L1", env=env)
    follower = await cluster.follower("F1", *FOLLOWER, env=env)
    proxy = await start_proxy(cluster, env=env)
    write = [["v1", [{"post": 1}]]]
    async with httpx.AsyncClient(timeout=10) as http:
        for url in (proxy.url, leader.url, follower.url):
            response = await http.patch(f"{url}/v1/inputs/votes", json=write)
            assert response.status_code == 401, url
        state = (await http.get(f"{leader.url}/v1/admin/state")).json()
        assert state["version"] == 0  # nothing changed
        ok = await http.patch(f"{proxy.url}/v1/inputs/votes", json=write,
                              headers={"Authorization": "Bearer t0k3n"})  # fmt: skip
        assert ok.status_code == 200
        # Streams still work for clients without the token (the proxy names them itself).
        stream_id = (await http.post(f"{proxy.url}/v1/streams/top", json={"limit": 1})).text
        assert parse(stream_id).node_id == "F1"
        assert (await http.delete(f"{proxy.url}/v1/streams/{stream_id}")).status_code == 401
    # A proxy told to stop has stopped successfully.
    assert await cluster.terminate("proxy") == 0
