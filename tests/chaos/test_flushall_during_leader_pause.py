"""A bug the chaos runs found, pinned by a deterministic reproduction.

FLUSHALL while the leader is paused (or partitioned, or starved of CPU) for longer than the
fresh-start grace plus the lease TTL: the standby found no keyspace and no live leader
heartbeat, started a fresh epoch at version 0 from the service's initial inputs, and every
write acknowledged before the FLUSHALL was gone (the paused leader, once resumed, saw another
epoch and discarded its state). Redis holds nothing to recover from; only the old leader's
memory does. Now a candidate that has evidence writes existed (it saw a head above 0, or a
follower reports an applied version above 0) waits `data_loss_wait_s` for the node holding
the state to republish it (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.support.harness import Cluster
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, check_no_write_lost, vote_counts, write_votes

pytestmark = pytest.mark.timeout(120)

LEASE = ("--lease-ttl", "1.5")


async def test_flushall_during_a_leader_pause_keeps_acknowledged_writes(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = await redis_server_factory(appendonly=True, appendfsync="always")
    async with Cluster(server.url, tmp_path) as cluster:
        old = await cluster.leader("L1", *LEASE)
        await cluster.leader("L2", *LEASE, ready=False)
        follower = await cluster.follower("F1")
        log = WriteLog()
        await write_votes([follower.url], log, count=20, prefix="before")
        cluster.signal("L1", signal.SIGSTOP)
        client = Redis.from_url(server.url)
        await client.flushall()
        await client.aclose()
        await asyncio.sleep(6)
        cluster.signal("L1", signal.SIGCONT)
        # The old leader holds the state: it takes the lease again and republishes it under a
        # new epoch; the standby must not have started an empty one meanwhile.
        await cluster.wait_ready(old, within=20)
        await write_votes([follower.url], log, count=5, prefix="after")
        await cluster.converged([old, follower])
        check_no_write_lost(log, await vote_counts(follower.url))
        assert (await cluster.state(old))["version"] >= 25
