"""`rediss://`: a leader, a follower and the proxy reach Redis over TLS (verified against the
certificate's CA, given in the URL as `ssl_ca_certs`), through tests/security/tls_terminator.py;
a client that does not trust the certificate is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.security.tls_terminator import TlsTerminator, self_signed
from tests.support.harness import Cluster
from tests.support.redis_server import ServerFactory
from tests.support.writers import WriteLog, vote_counts, write_votes

pytestmark = pytest.mark.timeout(120)


async def test_nodes_replicate_over_rediss(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    try:
        cert, key = self_signed(tmp_path)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    server = await redis_server_factory(password="tls-pass")
    async with TlsTerminator(server.port, cert, key) as tls:
        url = f"rediss://:tls-pass@127.0.0.1:{tls.port}/0?ssl_ca_certs={cert}"
        untrusting = Redis.from_url(f"rediss://:tls-pass@127.0.0.1:{tls.port}/0")
        with pytest.raises(RedisConnectionError):
            await untrusting.ping()
        await untrusting.aclose()
        async with Cluster(url, tmp_path) as cluster:
            leader = await cluster.leader("L1")
            follower = await cluster.follower("F1")
            proxy = await cluster.proxy()
            log = WriteLog()
            await write_votes([proxy.url], log, count=10, prefix="tls")
            await cluster.converged([leader, follower])
            assert sum((await vote_counts(follower.url)).values()) == 30
        assert tls.handshakes >= 3
