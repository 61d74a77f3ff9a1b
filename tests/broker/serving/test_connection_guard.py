"""A node's connections under the guard (broker/http/guarded_protocol.py), over real sockets:
request heads that never finish are closed after the header timeout, on the stream-read fast
path, after the hand-over to uvicorn and on split ports; established SSE streams, served on the
connection or through the ASGI app, outlive it untouched; the per-address cap holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from broker import RunningNode, ServeConfig, SkiffClient, running
from tests.broker.serving.test_connection import read_until, request
from tests.support.helpers import vote
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(20)

TIMEOUT = 0.5
CONFIG = ServeConfig(port=0, shutdown_timeout_s=1, header_timeout_s=TIMEOUT)


@pytest.fixture
def config() -> ServeConfig:
    return CONFIG


@pytest.fixture
async def node(config: ServeConfig) -> AsyncIterator[RunningNode]:
    async with running(make_service(), config, run="run-1") as node:
        yield node


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    assert time.monotonic() - started < seconds
    return data


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v1/streams/abc HTTP/1.1\r\nHost: x\r\n",  # held by the node's own protocol
        b"POST /v1/streams/top HTTP/1.1\r\nHost: x\r\n",  # handed over to uvicorn's at once
        b"",  # nothing at all
    ],
)
async def test_an_unfinished_head_is_closed_after_the_timeout(
    node: RunningNode, head: bytes
) -> None:
    reader, writer = await connect(node.url)
    writer.write(head)
    for _ in range(3):  # trickled header lines do not extend the deadline
        await asyncio.sleep(TIMEOUT / 4)
        if head:
            writer.write(b"X-Slow: 1\r\n")
    data = await closed_within(reader, TIMEOUT + 1.0)
    writer.close()
    # A 408 when a head had begun; a connection that said nothing is closed without a word.
    assert data.startswith(b"HTTP/1.1 408 ") if head else data == b""
    assert node.guard.timed_out == 1


async def test_established_streams_outlive_the_timeout(node: RunningNode) -> None:
    async with SkiffClient(node.url) as client:
        fast = await client.create_stream("top", {"limit": 5})
        slow = await client.create_stream("top", {"limit": 6})
        # One served on the connection itself, one through the ASGI app (Last-Event-ID).
        readers = []
        for stream_id, extra in ((fast, ()), (slow, ("Last-Event-ID: other/1",))):
            reader, writer = await connect(node.url)
            writer.write(request(stream_id, *extra))
            assert b"event: init" in await read_until(reader, b"event: init")
            readers.append((reader, writer))
        await asyncio.sleep(TIMEOUT * 3)
        await client.patch("votes", [["guard-1", vote(1, "zz")]])
        for reader, writer in readers:
            got = await read_until(reader, b"event: update")
            assert b"event: update" in got, got
            writer.close()


@pytest.mark.parametrize(
    "config", [ServeConfig(port=0, control_port=0, header_timeout_s=TIMEOUT)], ids=["split"]
)
async def test_split_ports_are_guarded_too(node: RunningNode) -> None:
    for url in (node.url, node.control_url):
        reader, writer = await connect(url)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        assert (await closed_within(reader, TIMEOUT + 1.0)).startswith(b"HTTP/1.1 408 ")
        writer.close()


@pytest.mark.parametrize(
    "config", [ServeConfig(port=0, max_connections_per_address=2)], ids=["capped"]
)
async def test_a_node_can_cap_connections_per_address(node: RunningNode) -> None:
    held = [await connect(node.url) for _ in range(2)]
    reader, writer = await connect(node.url)
    assert (await closed_within(reader, 2.0)).startswith(b"HTTP/1.1 429 ")
    writer.close()
    for _, w in held:
        w.close()


def test_the_cap_is_off_on_nodes_by_default() -> None:
    # A node's clients are proxies, holding one connection per relayed stream.
    assert ServeConfig().max_connections_per_address == 0
    assert ServeConfig().header_timeout_s == 10.0


@pytest.mark.parametrize("path", ["/v1/inputs/votes", "/v1/streams/top", "/v1/snapshot/top"])
async def test_a_body_that_never_finishes_gets_408_and_changes_nothing(path: str) -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1, body_timeout_s=TIMEOUT, control_token="t")
    async with running(make_service(), config, run="run-1") as node:
        reader, writer = await connect(node.url)
        method = "PATCH" if "inputs" in path else "POST"
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[[".encode()
        )
        for _ in range(3):  # trickled bytes do not extend the deadline
            await asyncio.sleep(TIMEOUT / 4)
            writer.write(b" ")
        data = await closed_within(reader, TIMEOUT + 1.0)  # answered, then closed
        writer.close()
        assert data.startswith(b"HTTP/1.1 408 ")
        assert b"request body not complete within 0.5 s" in data
        assert node.hub.engine.version == 0 and node.hub.instance_count == 0
