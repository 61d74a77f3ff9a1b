"""`skiff follower` as a real process: it bootstraps, serves, announces itself, stops on
SIGTERM and deregisters."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from broker import Init, SkiffClient, Update
from broker.store.keyspace import Keyspace
from broker.store.node_record import NodeRecord
from tests.support.helpers import vote
from tests.support.polling import eventually
from tests.support.scripted_leader import ScriptedLeader
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]


async def test_follower_process(
    redis_client: Redis, redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    service = dataclasses.replace(make_service(), name=keyspace.service)
    leader = ScriptedLeader(redis_client, keyspace, service)
    await leader.start_epoch()
    log = (tmp_path / "follower.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "skiff", "follower", "tests.support.named_service:service",
        "--redis", redis_url, "--node-id", "f-cli", "--port", "0", "--heartbeat", "0.2",
        cwd=ROOT, stdout=log, stderr=log,
        env={**os.environ, "SKIFF_TEST_SERVICE_NAME": keyspace.service},
    )  # fmt: skip
    try:

        async def announced() -> NodeRecord | None:
            raw = await redis_client.get(keyspace.node("f-cli"))
            return NodeRecord.decode(raw) if raw is not None else None

        record = await eventually(announced, within=20)
        assert record.role == "follower" and record.url is not None
        async with SkiffClient(record.url) as client:
            stream = await client.create_stream("top", {"limit": 10})
            events = client.events(stream, reconnect=False)
            assert await anext(events) == Init(leader.epoch, 0, [(1, [1]), (2, [1])])
            version = await leader.write({"votes": [("v3", vote(2, "cy"))]})
            assert await anext(events) == Update(leader.epoch, version, [(2, [2])])
            async with httpx.AsyncClient() as http:
                health = (await http.get(record.url + "/healthz")).json()
            assert (health["role"], health["version"]) == ("follower", version)
            proc.send_signal(signal.SIGTERM)
            # The stream ends (the node drains), then the process exits cleanly.
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(events), 20)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert await redis_client.get(keyspace.node("f-cli")) is None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        print((tmp_path / "follower.log").read_text(errors="replace")[-3000:])  # on failure
