"""A leader process whose Redis goes away must back off, not spin.

Regression: the lease keeper woke itself up (its own "lease trouble" signal) and retried in a
tight loop once the lease had expired during an outage: 30-40 % of a core, forever.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from bench.procs import wait_ready
from skiff.dev.embedded_redis import free_port
from tests.support.harness import ROOT, SKIFF
from tests.support.redis_server import ServerFactory

pytestmark = pytest.mark.timeout(60)


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_leader_without_redis_backs_off(redis_server_factory: ServerFactory) -> None:
    server = await redis_server_factory()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, never awaited on
        [
            SKIFF,
            "leader",
            "tests.support.cluster_services:service",
            "--redis",
            server.url,
            "--port",
            str(port),
            "--lease-ttl",
            "1.5",
            "--node-id",
            "L1",
            "--advertise-url",
            url,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_ready, url, 30)
        await server.stop()
        await asyncio.sleep(2.0)  # past the lease: the keeper now retries on its own
        cpu, wall = _cpu_seconds(proc.pid), time.monotonic()
        await asyncio.sleep(3.0)
        share = (_cpu_seconds(proc.pid) - cpu) / (time.monotonic() - wall)
        assert share < 0.1, f"the leader used {share:.0%} of a core while Redis was down"
    finally:
        proc.kill()
        proc.wait(timeout=10)
