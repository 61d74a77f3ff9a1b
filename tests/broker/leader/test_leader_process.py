"""Real `skiff leader` processes: election, the standby's answers, takeover after kill -9,
idempotent retries across the change, and a clean SIGTERM that hands the lease over."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from broker.store.keyspace import Keyspace
from tests.support.cluster_services import service
from tests.support.harness import Cluster
from tests.support.polling import eventually
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, check_no_write_lost, vote_counts, write_votes

pytestmark = pytest.mark.timeout(120)


async def _health(http: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        return await http.get(f"{url}/healthz")
    except httpx.TransportError:
        return None


KEYS = Keyspace(service.name)


async def test_leader_processes_fail_over_and_stop_cleanly(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    redis = Redis.from_url(server.url)
    failed = True
    cluster = Cluster(server.url, tmp_path)
    try:
        first = await cluster.leader("L1")
        standby = await cluster.leader("L2", ready=False)
        http = cluster.http
        health = await eventually(lambda: _health(http, standby.url), within=15)
        assert health.status_code == 503
        assert (health.json()["role"], health.json()["error"]) == ("candidate", "standby")
        refused = await http.patch(f"{standby.url}/v1/inputs/votes", json=[["x", [{"post": 1}]]])
        assert refused.status_code == 503
        assert refused.json() == {"error": f"not the leader; leader is L1 at {first.url}"}

        log = WriteLog()
        await write_votes([first.url], log, count=30, prefix="a")
        body = [["once", [{"post": 3}]]]
        headers = {"Idempotency-Key": "once"}
        applied = await http.patch(f"{first.url}/v1/inputs/votes", json=body, headers=headers)
        version = applied.json()["version"]
        log.acked[3] += 1

        killed_at = time.monotonic()
        cluster.kill("L1")
        await cluster.wait_ready(standby, within=15)
        takeover = time.monotonic() - killed_at
        print(f"takeover after kill -9: {takeover:.2f} s")
        assert takeover < 5.0

        retried = await http.patch(f"{standby.url}/v1/inputs/votes", json=body, headers=headers)
        assert retried.json() == {"version": version}
        await write_votes([standby.url], log, count=10, prefix="b")
        check_no_write_lost(log, await vote_counts(standby.url))
        state = (await http.get(f"{standby.url}/healthz")).json()
        assert (state["role"], state["version"]) == ("leader", version + 10)

        assert await cluster.terminate("L2") == 0
        assert await redis.get(KEYS.lease) is None
        assert await redis.get(KEYS.node("L2")) is None
        failed = False
    finally:
        await cluster.close(show_logs=failed)
        await redis.aclose()
