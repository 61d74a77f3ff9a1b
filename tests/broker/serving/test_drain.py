"""Draining a node: intake stops, streams end spread over the window, then the node stops."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from broker import RunningNode, ServeConfig, running
from broker.serving.drain import close_offsets
from tests.support.polling import eventually
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(20)

SSE = {"Accept": "text/event-stream"}


@pytest.mark.parametrize(
    ("count", "window", "expected"),
    [
        (0, 10.0, []),
        (1, 10.0, [0.0]),
        (4, 10.0, [0.0, 2.5, 5.0, 7.5]),
        (3, 0.0, [0.0, 0.0, 0.0]),
    ],
)
def test_close_offsets(count: int, window: float, expected: list[float]) -> None:
    assert close_offsets(count, window) == expected


@pytest.fixture
def config() -> ServeConfig:
    return ServeConfig(port=0, shutdown_timeout_s=1, drain_window_s=0.6)


@pytest.fixture
async def node(config: ServeConfig) -> AsyncIterator[RunningNode]:
    async with running(make_service(), config, run="r1") as node:
        yield node


async def read_until_closed(http: httpx.AsyncClient, stream_id: str) -> float:
    """Read a stream to its end; the loop time at which it ended."""
    async with http.stream("GET", f"/v1/streams/{stream_id}", headers=SSE) as response:
        assert response.status_code == 200
        async for _ in response.aiter_raw():
            pass
    return asyncio.get_running_loop().time()


async def test_drain_spreads_disconnects_then_stops(node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        ids = [(await http.post("/v1/streams/top", json={"limit": n})).text for n in range(4)]
        readers = [asyncio.create_task(read_until_closed(http, s)) for s in ids]
        await eventually(lambda: node.hub.reader_count == 4)
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await http.post("/v1/admin/drain")
        assert response.status_code == 202
        assert response.json() == {"draining": True, "already": False, "window_s": 0.6}
        # Intake is closed at once: no new streams, no new readers, not ready.
        assert (await http.post("/v1/streams/top", json={})).status_code == 503
        assert (await http.get(f"/v1/streams/{ids[0]}", headers=SSE)).status_code == 503
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["error"] == "draining"
        assert (await http.post("/v1/admin/drain")).json()["already"] is True
        ended = sorted(t - started for t in await asyncio.gather(*readers))
    # One by one over the window (0, 0.15, 0.3, 0.45 s), not all at once.
    assert ended[0] < 0.15
    assert ended[-1] - ended[0] >= 0.3
    assert ended[-1] < 1.0
    # Then the node shut down by itself.
    await asyncio.wait_for(node.wait_closed(), 5)


async def test_drain_route_needs_the_token() -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1, control_token="tok")
    async with (
        running(make_service(), config, run="r1") as node,
        httpx.AsyncClient(base_url=node.url) as http,
    ):
        assert (await http.post("/v1/admin/drain")).status_code == 401
        assert not node.hub.draining
        auth = {"Authorization": "Bearer tok"}
        assert (await http.post("/v1/admin/drain", headers=auth)).status_code == 202
        await asyncio.wait_for(node.wait_closed(), 5)  # no stream: drained at once


async def test_sigterm_drains_and_a_second_one_stops_at_once() -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1, drain_window_s=30)
    async with (
        running(make_service(), config, run="r1") as node,
        httpx.AsyncClient(base_url=node.url, timeout=10) as http,
    ):
        stream_id = (await http.post("/v1/streams/top", json={})).text
        ids = [stream_id, (await http.post("/v1/streams/top", json={"limit": 1})).text]
        readers = [asyncio.create_task(read_until_closed(http, s)) for s in ids]
        await eventually(lambda: node.hub.reader_count == 2)
        server = node._server  # what uvicorn's signal handler calls
        server.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(readers[0], 2)  # the first stream ends at once
        assert node.hub.draining and not readers[1].done()  # the second waits its turn (15 s)
        server.handle_exit(signal.SIGTERM, None)
        await asyncio.wait_for(node.wait_closed(), 5)
        await asyncio.wait_for(readers[1], 2)
