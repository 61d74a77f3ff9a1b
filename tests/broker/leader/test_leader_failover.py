"""Leader election between in-process candidates: one leads, a standby takes over a silent
leader from snapshot + input log, the old leader is fenced out and steps down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from broker.leader.lease import LeaderLease
from broker.store.codec import LeaseRecord
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import (
    admin_state,
    candidate,
    inputs,
    leading,
    meta_of,
    patch,
    stream_versions,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(90)


async def test_exactly_one_of_two_candidates_leads(
    redis_url: str, redis_client: Redis, service: Service
) -> None:
    async with (
        candidate(redis_url, service, "a") as a,
        candidate(redis_url, service, "b") as b,
    ):
        await eventually(lambda: (a.leadership is None) != (b.leadership is None), within=10)
        winner, loser = (a, b) if a.leadership is not None else (b, a)
        lead = await leading(winner)
        for _ in range(10):
            await asyncio.sleep(0.2)
            assert loser.leadership is None
            assert winner.leadership is lead
        assert loser.status.holder is not None
        assert loser.status.holder.holder == winner.lease.holder
        assert lead.writer.lease.token == 1


async def test_a_standby_takes_over_a_silent_leader(
    redis_url: str,
    redis_client: Redis,
    keyspace: Keyspace,
    service: Service,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thawed = asyncio.Event()
    frozen_holders: set[str] = set()
    real_renew = LeaderLease.renew

    async def renew(self: LeaderLease, record: LeaseRecord) -> bool:
        # A paused process: its renewals do not happen until it is thawed.
        if self.holder in frozen_holders:
            await thawed.wait()
        return await real_renew(self, record)

    monkeypatch.setattr(LeaderLease, "renew", renew)
    async with candidate(redis_url, service, "a", snapshot_every=4) as a:
        old = await leading(a)
        async with candidate(redis_url, service, "b") as b:
            acked: dict[str, int] = {}
            for i in range(10):
                key = f"idem-{i}" if i % 2 else None
                response = await patch(a.url or "", "votes", [[f"w{i}", vote(i % 3, "u")]], key)
                assert response.status_code == 200
                acked[f"w{i}"] = response.json()["version"]
            # Snapshots at 4 and 8 (the last one in the background): the rebuild starts from one.
            await eventually(lambda: old.snapshot_version == 8, within=5)
            before = await admin_state(a.url or "")
            assert b.leadership is None

            frozen_holders.add(a.lease.holder)
            paused_at = time.monotonic()
            new = await leading(b, within=10)
            takeover_s = time.monotonic() - paused_at
            assert takeover_s < 5.0, takeover_s
            print(f"takeover after {takeover_s:.2f} s")

            # The standby rebuilt exactly the state the old leader acknowledged.
            after = await admin_state(b.url or "")
            assert after["checksums"] == before["checksums"]
            assert (after["epoch"], after["version"]) == (before["epoch"], 10)
            votes = dict(new.engine.collection_items("votes"))
            assert set(acked) <= set(votes)
            assert new.writer.lease.token > old.writer.lease.token

            # A retry carrying an idempotency key the old leader applied is not applied again.
            retry = await patch(b.url or "", "votes", [["w1", vote(1, "u")]], "idem-1")
            assert retry.json() == {"version": acked["w1"]}
            fresh = await patch(b.url or "", "votes", [["w10", vote(2, "v")]], "idem-10")
            assert fresh.json() == {"version": 11}

            # The old leader still believes it leads: its next append is fenced out.
            stale = await patch(a.url or "", "votes", [["stale", vote(1, "z")]])
            assert stale.status_code == 503, stale.text
            assert await stream_versions(redis_client, keyspace.deltas) == list(range(5, 12))
            assert "stale" not in [k for e in await inputs(redis_client, keyspace)
                                   for k, _ in e.writes.get("votes", ())]  # fmt: skip

            # Thawed, it finds the lease taken and steps down to a standby.
            thawed.set()

            def stood_down() -> bool:
                holder = a.status.holder
                taken = holder is not None and holder.holder == b.lease.holder
                return a.leadership is None and taken

            await eventually(stood_down, within=5)
            assert a.role == "candidate"
            response = await patch(a.url or "", "votes", [["w11", vote(1, "u")]])
            assert response.status_code == 503
            assert (await meta_of(redis_client, keyspace)).head == 11


async def test_a_fenced_append_makes_the_leader_step_down(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "a") as a:
        lead = await leading(a)
        assert (await patch(a.url or "", "votes", [["x", vote(1, "u")]])).status_code == 200
        # Another holder now has the lease (as if this one had paused past its TTL).
        usurper = LeaseRecord(lead.writer.lease.token + 1, "other/1-abc")
        await redis_client.set(keyspace.lease, usurper.encode(), px=60_000)
        started = time.monotonic()
        response = await patch(a.url or "", "votes", [["y", vote(1, "u")]])
        assert response.status_code == 503
        assert response.json() == {"error": "not the leader any more (lost the lease)"}
        await eventually(lambda: a.leadership is None, within=5)
        assert time.monotonic() - started < 1.0  # at once, not at the next renewal
        assert lead.lost == "the lease is held by other/1-abc"
        assert await stream_versions(redis_client, keyspace.deltas) == [1]
        refused = await patch(a.url or "", "votes", [["z", vote(1, "u")]])
        assert refused.json() == {"error": "not the leader; leader is other at an unknown url"}


async def test_a_stopped_leader_hands_over_at_once(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with candidate(redis_url, service, "b") as b:
        async with candidate(redis_url, service, "a") as a:
            # b started first but the keyspace was empty: whichever led, make `a` lead.
            await eventually(lambda: a.leadership or b.leadership, within=10)
            if b.leadership is not None:
                a, b = b, a
            await leading(a)
            assert (await patch(a.url or "", "votes", [["x", vote(1, "u")]])).status_code == 200
            state = await admin_state(a.url or "")
            a.stop()
            stopped_at = time.monotonic()
            await leading(b, within=5)
            # The lease was released: no wait for its TTL.
            assert time.monotonic() - stopped_at < 2.5
            assert (await admin_state(b.url or ""))["checksums"] == state["checksums"]


async def test_status_reports_the_state_of_each_candidate(
    redis_url: str, redis_client: Redis, service: Service
) -> None:
    async with candidate(redis_url, service, "a") as a:
        lead = await leading(a)
        status: dict[str, Any] = lead.status()
        assert status["role"] == "leader" and status["term"] == lead.writer.lease.token
