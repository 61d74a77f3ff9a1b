"""A leader's write path: durable in Redis before the 200, nothing logged for a rejected write,
idempotency keys, the standby's answers, and reads that never see an open tick."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from broker import Init, SkiffClient, Update
from broker.leader.leadership import Leadership
from broker.leader.node import LeaderNode
from broker.serving.admin import checksums
from broker.store.fenced import FencedWriter
from broker.store.keyspace import Keyspace
from broker.store.scripts import RedisCallError
from graph import Engine, Service
from tests.support.helpers import vote
from tests.support.leader_support import (
    admin_state,
    candidate,
    deltas,
    inputs,
    leading,
    meta_of,
    patch,
    stream_versions,
)
from tests.support.leader_support import (
    events as events_of,
)
from tests.support.polling import eventually
from tests.support.redis_server import stream_entries

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def leader(
    redis_url: str, redis_client: Redis, service: Service
) -> AsyncIterator[LeaderNode]:
    async with candidate(redis_url, service, "leader-1") as node:
        await leading(node)
        yield node


async def test_a_write_is_in_both_streams_before_it_is_acknowledged(
    leader: LeaderNode, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    lead = leader.leadership
    assert lead is not None
    batch = [["v3", vote(1, "cid")], ["v4", vote(3, "dan")]]
    response = await patch(leader.url or "", "votes", batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"version": 1}
    # Read right after the 200: nothing may still be on its way.
    [(entry_id, fields)] = await stream_entries(redis_client, keyspace.deltas)
    assert entry_id == b"1-0"
    assert {b"version", b"epoch", b"term", b"c:scores"} <= set(fields)
    [delta] = await deltas(redis_client, keyspace)
    assert (delta.version, delta.epoch, delta.term) == (1, lead.epoch, lead.writer.lease.token)
    expected = Engine.for_service(service).apply({"votes": batch}).shared.changes
    assert dict(delta.changes) == {name: tuple(map(tuple, e)) for name, e in expected.items()}
    [logged] = await inputs(redis_client, keyspace)
    assert logged.version == 1 and logged.term == delta.term
    assert logged.writes == {"votes": (("v3", vote(1, "cid")), ("v4", vote(3, "dan")))}
    assert (await meta_of(redis_client, keyspace)).head == 1


@pytest.mark.parametrize(
    ("collection", "body", "status"),
    [
        ("votes", [["bad", [{"post": 1, "user": "x", "explode": True}]]], 422),
        ("votes", {"not": "a list"}, 400),
        ("votes", [["v1"]], 400),
        ("votes", [["v1", "not a list"]], 400),
        ("nope", [["k", [1]]], 404),
    ],
)
async def test_a_rejected_write_appends_nothing(
    leader: LeaderNode,
    redis_client: Redis,
    keyspace: Keyspace,
    collection: str,
    body: Any,
    status: int,
) -> None:
    url = leader.url or ""
    assert (await patch(url, "votes", [["v5", vote(2, "eve")]])).json() == {"version": 1}
    before = await admin_state(url)
    response = await patch(url, collection, body)
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert await stream_versions(redis_client, keyspace.deltas) == [1]
    assert await stream_versions(redis_client, keyspace.inputs) == [1]
    assert await admin_state(url) == before
    # The next accepted write takes the next version: no hole where the rejection was.
    assert (await patch(url, "votes", [["v6", vote(2, "fay")]])).json() == {"version": 2}
    assert await stream_versions(redis_client, keyspace.deltas) == [1, 2]


async def test_an_idempotency_key_applies_a_write_once(
    leader: LeaderNode, redis_client: Redis, keyspace: Keyspace
) -> None:
    url = leader.url or ""
    first = await patch(url, "votes", [["v7", vote(1, "gus")]], key="k-1")
    again = await patch(url, "votes", [["v7", vote(1, "gus")]], key="k-1")
    assert first.json() == again.json() == {"version": 1}
    other = await patch(url, "votes", [["v8", vote(1, "hal")]], key="k-2")
    assert other.json() == {"version": 2}
    logged = await inputs(redis_client, keyspace)
    assert [(e.version, e.idempotency_key) for e in logged] == [(1, "k-1"), (2, "k-2")]


async def test_the_leader_serves_its_resources_and_streams(leader: LeaderNode) -> None:
    url = leader.url or ""
    async with SkiffClient(url) as client:
        assert await client.snapshot("top", {"limit": 5}) == [(1, [1]), (2, [1])]
        stream = await client.create_stream("top", {"limit": 5})
        async with aclosing(events_of(client, stream)) as events:
            first = await anext(events)
            assert isinstance(first, Init) and first.run == leader.leadership.epoch  # type: ignore[union-attr]
            await client.patch("votes", [("v9", vote(1, "ivy"))])
            update = await anext(events)
            assert isinstance(update, Update)
            assert (update.version, update.entries) == (1, [(1, [2])])


async def test_admin_state_and_metrics(leader: LeaderNode) -> None:
    url = leader.url or ""
    await patch(url, "votes", [["v10", vote(3, "jo")]])
    state = await admin_state(url)
    lead = leader.leadership
    assert lead is not None
    assert state == {
        "node": "leader-1",
        "role": "leader",
        "epoch": lead.epoch,
        "version": 1,
        "checksums": checksums(lead.engine),
    }
    async with httpx.AsyncClient(base_url=url) as http:
        health = (await http.get("/healthz")).json()
        metrics = (await http.get("/metrics")).text
    assert health["role"] == "leader" and health["run"] == lead.epoch and health["version"] == 1
    assert 'skiff_writes_total{node="leader-1",role="leader"} 1.0' in metrics


async def test_a_standby_refuses_and_names_the_leader(
    leader: LeaderNode, redis_url: str, service: Service
) -> None:
    async with candidate(redis_url, service, "standby-1") as standby:
        url = standby.url or ""
        async with httpx.AsyncClient(base_url=url) as http:
            health = await http.get("/healthz")
            assert health.status_code == 503
            assert health.json()["role"] == "candidate"

            async def named_leader() -> bool:
                response = await patch(url, "votes", [["v1", vote(1, "x")]])
                assert response.status_code == 503
                error: str = response.json()["error"]
                return error == f"not the leader; leader is leader-1 at {leader.url}"

            await eventually(named_leader, within=5)
            assert (await http.post("/v1/streams/top", json={})).status_code == 503
            assert (await http.get("/v1/admin/state")).status_code == 503
        assert standby.leadership is None


async def test_reads_wait_for_the_tick_held_open_by_an_append(
    leader: LeaderNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an append is in flight the engine holds an open tick: a new resource instance
    cannot be created then, and a read would see changes that may be rolled back."""
    lead: Leadership | None = leader.leadership
    assert lead is not None
    appending = asyncio.Event()
    proceed = asyncio.Event()
    real_append = FencedWriter.append

    async def slow_append(self: FencedWriter, *args: Any, **kwargs: Any) -> Any:
        appending.set()
        await proceed.wait()
        return await real_append(self, *args, **kwargs)

    monkeypatch.setattr(FencedWriter, "append", slow_append)
    url = leader.url or ""
    write = asyncio.create_task(patch(url, "votes", [["v11", vote(2, "kim")]]))
    await appending.wait()
    assert lead.engine.tick is not None
    async with httpx.AsyncClient(base_url=url) as http:
        created = asyncio.create_task(http.post("/v1/streams/top", json={"limit": 3}))
        snapshot = asyncio.create_task(http.post("/v1/snapshot/top", json={"limit": 4}))
        await asyncio.sleep(0.2)
        assert not created.done() and not snapshot.done()
        proceed.set()
        assert (await write).json() == {"version": 1}
        assert (await created).status_code == 201
        reply = await snapshot
    assert reply.status_code == 200
    assert reply.json() == [[1, [1]], [2, [2]]]


@pytest.mark.parametrize("landed", [True, False])
async def test_an_append_whose_reply_was_lost_is_read_back(
    leader: LeaderNode,
    redis_client: Redis,
    keyspace: Keyspace,
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """A timeout hides whether the append ran: the leader reads the delta back and commits the
    write when it landed; otherwise it rolls back and answers 503 (not acknowledged)."""
    lead = leader.leadership
    assert lead is not None
    real_append = FencedWriter.append
    calls = 0

    async def lost_reply(self: FencedWriter, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            if landed:
                await real_append(self, *args, **kwargs)
            raise RedisCallError("script append failed: Timeout reading", transient=True)
        return await real_append(self, *args, **kwargs)

    monkeypatch.setattr(FencedWriter, "append", lost_reply)
    url = leader.url or ""
    first = await patch(url, "votes", [["v12", vote(3, "lee")]])
    if landed:
        assert first.json() == {"version": 1}
        assert lead.engine.version == 1
    else:
        assert first.status_code == 503, first.text
        assert "not acknowledged" in first.json()["error"]
        assert lead.engine.version == 0
    await eventually(lambda: lead.ready()[0], within=5)
    second = await patch(url, "votes", [["v13", vote(3, "max")]])
    assert second.json() == {"version": 2 if landed else 1}
    expected = [1, 2] if landed else [1]
    assert await stream_versions(redis_client, keyspace.deltas) == expected
    assert (await admin_state(url))["checksums"] == checksums(lead.engine)
