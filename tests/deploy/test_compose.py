"""docker/compose.yml brought up for real with podman-compose, and broken under its clients.

Runs under `make test-containers` (docker/local-engine.sh builds the images and the Makefile
sets the environment); anywhere else it skips, saying why. With the images overridden to the
local builds, the test opens SSE streams and writes through the published proxy port, then:
scales followers 2 -> 3, cuts a follower off the network and heals it, scales down to 1 (the
surplus followers drain), kills the leading candidate's container, kills and restarts Redis (its
AOF brings the state back), and flushes Redis (a new epoch). After each step every
client must converge to the state the acknowledged writes define; no client may ever see a 404
for its stream, nor a version going backwards within a run. Everything the project started is
removed at the end, also on failure (container logs are kept in test-artifacts/).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from skiff.dev.embedded_redis import free_port
from tests.deploy.clients import Watcher, Writer, proxy_snapshot
from tests.deploy.compose_project import ComposeProject, podman_compose_command

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1200)]

STOP_GRACE_S = 30  # the followers' stop_grace_period in docker/compose.yml
CONVERGE_S = 120.0
CLUSTER_S = 120.0


def unavailable_reason() -> str | None:
    skiff_image = os.environ.get("SKIFF_TEST_SKIFF_IMAGE")
    redis_image = os.environ.get("SKIFF_TEST_REDIS_IMAGE")
    if not skiff_image or not redis_image:
        return (
            "the compose topology test runs under `make test-containers`, which builds the "
            "images (docker/local-engine.sh) and sets SKIFF_TEST_SKIFF_IMAGE and "
            "SKIFF_TEST_REDIS_IMAGE"
        )
    if shutil.which("podman") is None:
        return "podman is not installed (docker/local-engine.sh installs it)"
    if podman_compose_command() is None:
        return "podman-compose is not installed (pip install -e '.[containers]')"
    if os.geteuid() != 0:
        return "the local engine is rootful Podman: run as root"
    for image in (skiff_image, redis_image):
        found = subprocess.run(["podman", "image", "exists", image], check=False, timeout=60)
        if found.returncode != 0:
            return f"image {image} is missing: run `make containers`"
    return None


@pytest.fixture(scope="module")
def engine() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


class Steps:
    """Timestamps the test's progress (shown when it fails)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)


async def cluster_view(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/v1/admin/nodes")
    response.raise_for_status()
    view: dict[str, Any] = response.json()
    return view


def serving_followers(view: dict[str, Any]) -> list[str]:
    return [
        node["node_id"]
        for node in view["nodes"]
        if node["role"] == "follower" and node["ready"] and node["serving"] and not node["draining"]
    ]


async def wait_for_cluster(
    http: httpx.AsyncClient, *, followers: int, not_leader: str | None = None
) -> dict[str, Any]:
    """Until the proxy sees a leader (other than `not_leader`) and exactly `followers` serving
    followers, and no other follower."""
    deadline = time.monotonic() + CLUSTER_S
    view: dict[str, Any] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            view = await cluster_view(http)
        except (httpx.HTTPError, ValueError) as err:
            view = repr(err)
        else:
            all_followers = [n for n in view["nodes"] if n["role"] == "follower"]
            if (
                view["leader"] not in (None, not_leader)
                and len(serving_followers(view)) == followers
                and len(all_followers) == followers
            ):
                return view
        await asyncio.sleep(0.5)
    raise AssertionError(f"cluster not at {followers} followers within {CLUSTER_S:g} s: {view}")


async def converge(
    http: httpx.AsyncClient, watchers: list[Watcher], writer: Writer, steps: Steps, step: str
) -> None:
    """Until the proxy's snapshot and every client hold exactly the acknowledged writes."""
    expected = writer.expected()
    deadline = time.monotonic() + CONVERGE_S
    lagging: list[Watcher] = watchers
    snapshot: dict[str, int] | str = "not read"
    while time.monotonic() < deadline:
        failures = [f"{w.stream_id}: {w.failure}" for w in watchers if w.failure]
        assert not failures, f"{step}: clients stopped following their stream: {failures}"
        try:
            snapshot = await proxy_snapshot(http)
        except httpx.HTTPError as err:
            snapshot = repr(err)
        lagging = [w for w in watchers if w.upvotes() != expected]
        if snapshot == expected and not lagging:
            steps.log(f"{step}: {len(watchers)} clients converged on {len(expected)} posts")
            return
        await asyncio.sleep(0.25)
    details = "\n".join(
        f"  {w.stream_id} run={w.run} version={w.version} connections={w.connections} "
        f"statuses={dict(w.statuses)} diff={_diff(w.upvotes(), expected)}"
        for w in lagging[:10]
    )
    snapshot_diff = _diff(snapshot, expected) if isinstance(snapshot, dict) else snapshot
    raise AssertionError(
        f"{step}: not converged within {CONVERGE_S:g} s; snapshot diff {snapshot_diff}; "
        f"{len(lagging)} of {len(watchers)} clients lagging:\n{details}"
    )


def _diff(actual: dict[str, int], expected: dict[str, int]) -> dict[str, Any]:
    keys = actual.keys() | expected.keys()
    return {
        k: (actual.get(k), expected.get(k))
        for k in sorted(keys)
        if actual.get(k) != expected.get(k)
    }


@contextlib.asynccontextmanager
async def writes_flowing(writer: Writer) -> AsyncIterator[None]:
    """A steady write load while the body breaks something; every write is acknowledged."""
    stop = asyncio.Event()
    load = asyncio.create_task(writer.load(stop))
    try:
        yield
    finally:
        stop.set()
        await load


# Two resource instances: everyone's top posts, and the same flagged for alice's session.
SHARED_PARAMS: list[dict[str, Any]] = [
    {"limit": 1000},
    {"limit": 1000, "session_id": "session-alice"},
]


async def open_watchers(
    http: httpx.AsyncClient, params: list[dict[str, Any]], tasks: set[asyncio.Task[None]]
) -> list[Watcher]:
    """A watcher per params (each limit above the number of posts: they all see every post)."""
    watchers = [Watcher(http, p) for p in params]
    await asyncio.gather(*(w.open() for w in watchers))
    for watcher in watchers:
        task = asyncio.create_task(watcher.follow())
        tasks.add(task)
    return watchers


async def test_compose_cluster_scales_heals_and_fails_over(engine: None) -> None:
    steps = Steps()
    port = free_port()
    token = secrets.token_hex(16)
    env = {
        "SKIFF_IMAGE": os.environ["SKIFF_TEST_SKIFF_IMAGE"],
        "SKIFF_REDIS_IMAGE": os.environ["SKIFF_TEST_REDIS_IMAGE"],
        "SKIFF_PORT": str(port),
        "SKIFF_CONTROL_TOKEN": token,
    }
    tasks: set[asyncio.Task[None]] = set()
    async with (
        ComposeProject(env=env) as project,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10.0,
        ) as http,
    ):
        try:
            await _scenario(project, http, port, steps, tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _scenario(
    project: ComposeProject,
    http: httpx.AsyncClient,
    port: int,
    steps: Steps,
    tasks: set[asyncio.Task[None]],
) -> None:
    await project.up(followers=2)
    steps.log(f"podman-compose up: project {project.name}, proxy on 127.0.0.1:{port}")
    view = await wait_for_cluster(http, followers=2)
    steps.log(f"up: leader {view['leader']}, followers {serving_followers(view)}")

    # The compose healthchecks, run for real (nothing schedules them without systemd).
    for service in ("redis", "leader-a", "leader-b", "follower", "proxy"):
        for container in await project.containers(service):
            assert await project.healthcheck(container) == "healthy", container
    # What a user does: read the URL the `url` service printed, open it.
    (url_container,) = await project.containers("url", running_only=False)
    printed = await project.podman("logs", url_container, merged=True)
    assert f"open http://localhost:{port} " in printed, printed
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
        page = await anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        refused = await anonymous.patch("/v1/inputs/posts", content=b'[["x", [{}]]]')
        assert refused.status_code == 401

    writer = Writer(http, prefix=project.name)
    watchers = await open_watchers(http, SHARED_PARAMS * 6, tasks)
    await writer.write(8)
    await converge(http, watchers, writer, steps, "initial")

    # -- scale up: 2 -> 3 followers; the new one receives new streams -------------------------
    before = set(serving_followers(view))
    await project.up(followers=3)
    view = await wait_for_cluster(http, followers=3)
    (newcomer,) = set(serving_followers(view)) - before
    # New instances go to the least loaded follower (identical ones join their instance).
    newer = await open_watchers(http, [{"limit": 900 + i} for i in range(3)] * 2, tasks)
    watchers += newer
    assert newcomer in {w.node for w in newer}, "the new follower got no new stream"
    await writer.write(8)
    await converge(http, watchers, writer, steps, "scaled to 3")

    # -- a follower cut off the network, then healed -----------------------------------------
    hosts = {await project.hostname(c): c for c in await project.containers("follower")}
    busiest = max(hosts, key=lambda node: sum(w.node == node for w in watchers))
    victim = hosts[busiest]
    steps.log(
        f"disconnecting {victim} ({busiest}, {sum(w.node == busiest for w in watchers)} streams)"
    )
    async with writes_flowing(writer):
        await project.podman("network", "disconnect", project.network, victim)
        await wait_for_cluster(http, followers=2)
        await writer.write(4)
    await converge(http, watchers, writer, steps, "follower partitioned")
    stalled = sum(w.idle_timeouts for w in watchers)
    steps.log(f"{stalled} client connection(s) had to be ended by the client's idle timeout")
    async with writes_flowing(writer):
        await project.podman("network", "connect", project.network, victim)
        await wait_for_cluster(http, followers=3)
    await converge(http, watchers, writer, steps, "partition healed")

    # -- scale down: 3 -> 1; the surplus followers drain and exit 0 ------------------------
    surplus = (await project.containers("follower"))[1:]
    steps.log(f"scaling down: stopping {surplus}")
    async with writes_flowing(writer):
        codes = await asyncio.gather(
            *(project.stop_and_remove(c, grace_s=STOP_GRACE_S) for c in surplus)
        )
        await wait_for_cluster(http, followers=1)
    assert codes == [0] * len(surplus), f"drained followers exited with {codes}"
    await converge(http, watchers, writer, steps, "scaled to 1")

    # -- the leading candidate's container killed ----------------------------------------------
    leader = (await cluster_view(http))["leader"]
    steps.log(f"killing {leader}")
    async with writes_flowing(writer):
        killed = time.monotonic()
        await project.podman("kill", f"{project.name}_{leader}_1")
        view = await wait_for_cluster(http, followers=1, not_leader=leader)
        steps.log(f"{view['leader']} leads {time.monotonic() - killed:.1f} s after the kill")
    await converge(http, watchers, writer, steps, "leader failed over")

    # -- Redis killed and restarted: the AOF on its volume brings the state back ----------------
    redis = f"{project.name}_redis_1"
    runs = {w.run for w in watchers}
    steps.log("killing Redis")
    await project.podman("kill", redis)
    await project.podman("start", redis)
    await wait_for_cluster(http, followers=1)
    await writer.write(4)
    await converge(http, watchers, writer, steps, "Redis restarted")
    assert {w.run for w in watchers} == runs, "a Redis restart with its AOF changed the epoch"

    # -- Redis loses everything: a new epoch from the leader's memory, clients get an init ---
    steps.log("flushing Redis")
    await project.podman("exec", redis, "redis-cli", "FLUSHALL")
    await wait_for_cluster(http, followers=1)
    await writer.write(4)
    await converge(http, watchers, writer, steps, "Redis data lost")
    assert not {w.run for w in watchers} & runs, "Redis lost its data but the epoch stayed"

    # -- what no client may ever have seen ---------------------------------------------------
    assert [m for w in watchers for m in w.not_found] == []
    assert [m for w in watchers for m in w.regressions] == []
    statuses = sum((w.statuses for w in watchers), writer.statuses)
    steps.log(
        f"{writer.acknowledged} writes acknowledged; {len(watchers)} clients, "
        f"{sum(w.connections for w in watchers)} connections; non-2xx answers {dict(statuses)}"
    )
