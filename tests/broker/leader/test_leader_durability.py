"""A leader with `--durability replica`: a write is acknowledged once the replica holds it; with
the replica down it is answered 503 and not committed, and a retry with the same
Idempotency-Key is answered (once, with the version it got) when the replica is back.
Real servers: a primary and its replica."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from broker.store.durability import Durability
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import admin_state, candidate, leading, patch
from tests.support.redis_topologies import SentinelSet

pytestmark = pytest.mark.timeout(90)


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[SentinelSet]:
    async with SentinelSet(sentinels=0) as replicated:
        yield replicated


def not_durable(node: object) -> float:
    return node.ctx.metrics.not_durable._value.get()  # type: ignore[attr-defined]


async def test_without_its_replica_a_write_is_refused_then_answered_once(
    servers: SentinelSet, service: Service
) -> None:
    durability = Durability("replica", timeout_ms=300)
    async with candidate(servers.primary.url, service, "a", durability=durability) as a:
        lead = await leading(a)
        ok = await patch(a.url or "", "votes", [["v1", vote(1, "u1")]], "k1")
        assert ok.status_code == 200, ok.text
        await servers.replicas[0].kill()
        refused = await patch(a.url or "", "votes", [["v2", vote(2, "u2")]], "k2")
        assert refused.status_code == 503, refused.text
        assert "not confirmed" in refused.json()["error"]
        assert not_durable(a) == 1
        assert lead.engine.version == 1  # not committed
        await servers.replicas[0].start()
        deadline = time.monotonic() + 30
        while True:
            retry = await patch(a.url or "", "votes", [["v2", vote(2, "u2")]], "k2")
            if retry.status_code == 200:
                break
            assert retry.status_code == 503 and time.monotonic() < deadline, retry.text
        assert retry.json()["version"] == 2
        state = await admin_state(a.url or "")
        assert state["version"] == 2  # applied once
