"""Redis AUTH: a leader and a follower on a password-protected Valkey, the password in the URL.
It works, a wrong password fails loudly, and the password never shows in a log, in `/healthz`,
`/metrics`, `/v1/admin/state`, or in `skiff inspect` output."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.harness import SKIFF, Cluster
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, vote_counts, write_votes

pytestmark = pytest.mark.timeout(120)

PASSWORD = "s3cret-Pa55word-4f9a"


async def test_nodes_work_on_a_password_protected_redis_and_never_show_the_password(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = await redis_server_factory(appendonly=True, password=PASSWORD)
    assert PASSWORD in server.url
    async with Cluster(server.url, tmp_path) as cluster:
        leader = await cluster.leader("L1")
        follower = await cluster.follower("F1")
        proxy = await cluster.proxy()
        log = WriteLog()
        await write_votes([proxy.url], log, count=10, prefix="auth")
        await cluster.converged([leader, follower])
        assert sum((await vote_counts(follower.url)).values()) == log.total_acked == 30
        async with httpx.AsyncClient(timeout=10) as http:
            exposed = [
                (await http.get(node.url + path)).text
                for node in (leader, follower, proxy)
                for path in ("/healthz", "/metrics", "/v1/admin/state", "/v1/admin/nodes")
            ]
        inspect = await asyncio.to_thread(
            subprocess.run,
            [SKIFF, "inspect", "--redis", server.url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert inspect.returncode == 0, inspect.stderr
        assert "L1" in inspect.stdout
        # A wrong password: the node fails to get ready, and says why without echoing it.
        wrong = server.url.replace(PASSWORD, "not-the-password")
        cluster.redis_url = wrong
        bad = await cluster.follower("F2", ready=False)
        await asyncio.sleep(3)
        try:  # not serving yet (it binds once bootstrapped), or serving 503
            status = (await cluster.http.get(bad.url + "/healthz", timeout=5)).status_code
        except httpx.ConnectError:
            status = 503
        assert status == 503
    logs = [p.read_text(errors="replace") for p in tmp_path.glob("*.log")]  # noqa: ASYNC240
    for text in [*exposed, inspect.stdout, inspect.stderr, *logs]:
        assert PASSWORD not in text
        assert "not-the-password" not in text
