"""`skiff proxy --control-port`: a second port with the same routes, so Skip's clients
(SkipServiceBroker: control requests to one port, streams read on the other) work against a
cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from proxy import ProxyConfig, ProxyConfigError, RunningProxy
from tests.proxy.conftest import StartNode, sse_headers
from tests.proxy.nodes import running_proxy, until_serving

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def proxy(config: ProxyConfig, start_node: StartNode) -> AsyncIterator[RunningProxy]:
    async with running_proxy(dataclasses.replace(config, control_port=0)) as running:
        yield running


async def test_the_same_routes_on_both_ports(proxy: RunningProxy, start_node: StartNode) -> None:
    assert proxy.control_url != proxy.url
    await start_node("f-0")
    await until_serving(proxy, 1)
    async with (
        httpx.AsyncClient(base_url=proxy.control_url, timeout=10) as control,
        httpx.AsyncClient(base_url=proxy.url, timeout=10) as streaming,
    ):
        # Created on the control port, read on the other: Skip's layout.
        created = await control.post("/v1/streams/top", json={})
        assert created.status_code == 201
        async with streaming.stream(
            "GET", f"/v1/streams/{created.text}", headers=sse_headers()
        ) as sse:
            assert sse.status_code == 200
            assert (await anext(sse.aiter_lines())).startswith("event: init")
        # And the other way round: every route answers on both.
        for http in (control, streaming):
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.post("/v1/snapshot/top", json={})).status_code == 200


def test_a_control_port_is_checked(config: ProxyConfig) -> None:
    with pytest.raises(ProxyConfigError, match="control_port must be in"):
        dataclasses.replace(config, control_port=70000)
    with pytest.raises(ProxyConfigError, match="must differ"):
        dataclasses.replace(config, port=9000, control_port=9000)
