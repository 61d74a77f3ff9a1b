"""`skiff inspect`, run as a real process against a real server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

import pytest
from redis.asyncio import Redis

from broker import ServeConfig
from broker.cluster.heartbeat import Heartbeat
from broker.cluster.inspect import read_cluster, render_text
from broker.follower.node import follower_node
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from tests.support.helpers import vote
from tests.support.polling import eventually
from tests.support.scripted_leader import ScriptedLeader
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(60)


async def skiff(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "skiff", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def record(node: str, role: Any, epoch: str, applied: int, url: str) -> NodeRecord:
    return NodeRecord(node, role, epoch, applied, 0, 1, True, url)


async def test_inspect_a_live_service(
    redis_client: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    service = dataclasses.replace(make_service(), name=keyspace.service)
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.lead("lead-0/77-abcdef")
    await leader.start_epoch()
    for n in range(6):
        await leader.write({"votes": [(f"v{n}", vote(1, f"u{n}"))]})
    await leader.take_snapshot()
    for n in range(4):
        await leader.write({"votes": [(f"w{n}", vote(2, f"u{n}"))]})
    epoch, head = leader.epoch, leader.version
    config = ServeConfig(port=0, shutdown_timeout_s=1)

    def beat(node: str, role: str, applied: int, ttl_ms: int = 3000) -> Heartbeat:
        url = f"http://{node}:1"
        current = record(node, role, epoch, applied, url)
        return Heartbeat(redis_client, keyspace, node, lambda: current, ttl_ms=ttl_ms)

    lead_beat = beat("lead-0", "leader", head)
    behind = beat("f-behind", "follower", head - 3)
    gone = beat("f-gone", "follower", 0, ttl_ms=1001)
    await gone.beat()
    async with (
        follower_node(service, config, redis_url=redis_url, node_id="f-live") as node,
        lead_beat,
        behind,
    ):
        await eventually(lambda: node.sync.applied == head)
        await eventually(lambda: redis_client.exists(keyspace.node("f-live")))
        await asyncio.sleep(1.1)  # the follower's next beat reports the applied head

        async def gone_expired() -> bool:
            return not await redis_client.exists(keyspace.node("f-gone"))

        await eventually(gone_expired, within=3)

        code, text, err = await skiff("inspect", "--redis", redis_url, "--service",
                                      keyspace.service)  # fmt: skip
        assert code == 0, err
        code, raw, err = await skiff("inspect", "--redis", redis_url, "--service",
                                     keyspace.service, "--json")  # fmt: skip
        assert code == 0, err

    lines = text.splitlines()
    assert lines[0].split() == ["service", keyspace.service]
    assert lines[1].startswith(f"leader    lead-0  term {leader.writer.lease.token}  ")  # type: ignore[union-attr]
    assert f"epoch     {epoch}" in text
    assert f"head      {head}  (published" in text
    assert "snapshot  6  (published" in text
    # The snapshot trimmed only what came before the previous one (version 0).
    assert "deltas    10 entries (versions 1..10)" in text
    assert "inputs    10 entries (versions 1..10)" in text
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ")}
    assert rows["NODE"][:6] == ["NODE", "ROLE", "APPLIED", "LAG", "LAG_MS", "READY"]
    assert rows["f-live"][1:4] == ["follower", str(head), "0"]
    assert rows["f-behind"][1:4] == ["follower", str(head - 3), "3"]
    assert rows["lead-0"][1:4] == ["leader", str(head), "0"]
    assert rows["f-gone"][1] == "gone"
    assert lines[-1].startswith(f"redis     {redis_url}, ")  # where, and the primary in use
    assert lines[-1].endswith(f"primary {redis_url.split('//')[1].split('/')[0]}")

    view = json.loads(raw)
    assert view["leader"]["node_id"] == "lead-0" and view["term"] == view["leader"]["term"]
    assert (view["epoch"], view["head"], view["snapshot"]) == (epoch, head, 6)
    assert view["streams"]["deltas"] == {"length": 10, "first": 1, "last": 10}
    nodes = {n["node_id"]: n for n in view["nodes"]}
    assert nodes["f-behind"]["lag_versions"] == 3 and nodes["f-behind"]["lag_ms"] >= 0
    assert nodes["f-live"]["ready"] is True and nodes["f-live"]["url"] == node.url
    assert nodes["f-gone"]["alive"] is False
    assert view["redis_primary"] == redis_url.split("//")[1].split("/")[0]


async def test_inspect_finds_services_and_reports_an_empty_one(
    redis_client: Redis, keyspace: Keyspace
) -> None:
    view = await read_cluster(redis_client, keyspace)
    text = render_text(view)
    assert "leader    none" in text and "epoch     none" in text
    assert "deltas    0 entries (empty)" in text


async def test_inspect_without_any_service_fails_cleanly(redis_url: str) -> None:
    code, out, err = await skiff("inspect", "--redis", redis_url, "--service", "nothing-here")
    assert (code, out) == (1, "")
    assert err.startswith("skiff inspect: no service 'nothing-here' in ") and err.count("\n") == 1
    code, _, err = await skiff("inspect", "--redis", "redis://127.0.0.1:1")
    assert code == 1 and "cannot read" in err


async def test_inspect_names_the_services_there_when_one_is_unknown(
    redis_client: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    # Registered nodes are enough for a service to exist (no leader has initialised it yet).
    async with Heartbeat(
        redis_client, keyspace, "f-0", lambda: record("f-0", "follower", "", 0, "http://x")
    ):
        code, out, _ = await skiff("inspect", "--redis", redis_url, "--service", keyspace.service)
        assert code == 0 and f"service   {keyspace.service}" in out
        code, _, err = await skiff("inspect", "--redis", redis_url, "--service", "nope")
    assert code == 1 and keyspace.service in err.partition("services there: ")[2]
