"""Connections that never finish a request (tests/security/slowloris.py): 10,000 of them, at a
real proxy and at a real follower, are all closed within the header timeout plus slack, while a
new client is served and an established stream keeps its updates; one address gets no more
than the proxy's cap. The timeout is 4 s here: the 10,000 open in about 2 s on a quiet 2-core
machine, so all of them are open at once. About 20 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.runtime.fd_limit import raise_open_files_limit
from tests.security.slowloris import check, run
from tests.support.redis_server import ServerFactory

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

CONNECTIONS = 10_000


async def test_slow_heads_are_closed_and_streams_still_served(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    limit = raise_open_files_limit()
    # This process holds the slow clients; the proxy and the follower are processes of their own.
    connections = min(CONNECTIONS, limit - 1_500)
    if connections < 1_000:
        pytest.skip(f"an open-files limit of {limit} cannot hold the flood")
    server = await redis_server_factory()
    report = await run(server.url, tmp_path, connections=connections, header_timeout=4.0,
                       interval=0.5)  # fmt: skip
    assert check(report, slack_s=3.0) == [], report
    for target in ("proxy", "follower"):
        # All open at once on a quiet machine (`make slowloris` prints it); on a loaded one the
        # first may be closed before the last open: still thousands held together.
        assert report[target]["peak_open"] >= connections // 2
        assert report[target]["new_stream_served_in_s"] < 5.0
