"""A follower at its stream limit answers 429: the proxy creates the stream on another one, and
relays the 429 only when none has room."""

from __future__ import annotations

import httpx
import pytest

from broker import ServeConfig
from proxy import RunningProxy
from proxy.stream_ids import parse
from tests.proxy.conftest import StartNode

pytestmark = pytest.mark.timeout(30)


async def test_a_full_follower_is_skipped_and_a_full_cluster_is_429(
    proxy: RunningProxy, start_node: StartNode, http: httpx.AsyncClient
) -> None:
    full = ServeConfig(port=0, shutdown_timeout_s=1, drain_window_s=0.5, max_streams=1)
    await start_node("f-0", config=full)
    await start_node("f-1", config=full)
    found = await proxy.gateway.membership.wait_for(lambda c: {"f-0", "f-1"} <= set(c.nodes), 3.0)
    assert found is not None
    hosts = set()
    for limit in (1, 2):
        created = await http.post("/v1/streams/top", json={"limit": limit})
        assert created.status_code == 201, created.text
        hosts.add(parse(created.text).node_id)
    assert hosts == {"f-0", "f-1"}
    refused = await http.post("/v1/streams/top", json={"limit": 3})
    assert refused.status_code == 429, refused.text
