"""NodeConnection: stream reads answered on the connection itself, everything else handed to
uvicorn; over real sockets to a real node."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from broker import RunningNode, ServeConfig, SkiffClient, running
from broker.serving.connection import NodeConnection
from tests.support.helpers import vote
from tests.support.polling import eventually
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(20)

RUN = "run-1"


@pytest.fixture
def config() -> ServeConfig:
    return ServeConfig(port=0, heartbeat_s=30, shutdown_timeout_s=2, send_timeout_s=0.5)


@pytest.fixture
async def node(config: ServeConfig) -> AsyncIterator[RunningNode]:
    async with running(make_service(), config, run=RUN) as node:
        yield node


@pytest.fixture
async def client(node: RunningNode) -> AsyncIterator[SkiffClient]:
    async with SkiffClient(node.url) as client:
        yield client


def _port(node: RunningNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


def request(stream_id: str, *extra: str) -> bytes:
    lines = [f"GET /v1/streams/{stream_id} HTTP/1.1", "Host: x", "Accept: text/event-stream"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    async with asyncio.timeout(5):
        while marker not in data:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    return data


async def test_a_stream_read_is_served_without_a_task(
    node: RunningNode, client: SkiffClient
) -> None:
    stream_id = await client.create_stream("top", {"limit": 2})
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    writer.write(request(stream_id))
    head = await read_until(reader, b"event: init")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-type: text/event-stream; charset=utf-8\r\n" in head
    assert b"transfer-encoding: chunked\r\n" in head
    assert b"\r\nevent: init\nid: run-1/0\ndata: [[1,[1]],[2,[1]]]\n\n\r\n" in head
    # The connection is this protocol's own: no ASGI task holds the idle stream.
    transport = writer.transport
    server = node._server  # the uvicorn server (for its state)
    assert any(isinstance(c, NodeConnection) for c in server.server_state.connections)
    assert not server.server_state.tasks
    await client.patch("votes", [("v3", vote(1, "cy"))])
    update = await read_until(reader, b"event: update")
    assert b"event: update\nid: run-1/1\ndata: [[1,[2]]]\n\n" in update
    transport.close()
    await eventually(lambda: node.hub.reader_count == 0)


async def test_a_head_split_across_packets(node: RunningNode, client: SkiffClient) -> None:
    stream_id = await client.create_stream("top", {})
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    for byte in request(stream_id):
        writer.write(bytes([byte]))
        await writer.drain()
    assert b"event: init" in await read_until(reader, b"event: init")
    writer.close()


@pytest.mark.parametrize(
    ("stream", "extra", "status"),
    [
        ("nope-nope-nope-nope", (), b"404"),
        (None, ("Accept: application/json",), b"406"),
    ],
)
async def test_errors_are_answered_by_the_app(
    node: RunningNode,
    client: SkiffClient,
    stream: str | None,
    extra: tuple[str, ...],
    status: bytes,
) -> None:
    stream_id = stream or await client.create_stream("top", {})
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    head = request(stream_id, *extra)
    if extra:
        head = head.replace(b"Accept: text/event-stream\r\n", b"")
    writer.write(head)
    answer = await read_until(reader, b"}")
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b'{"error":' in answer
    writer.close()


async def test_other_requests_and_keep_alive_go_to_uvicorn(
    node: RunningNode, client: SkiffClient
) -> None:
    async with httpx.AsyncClient(base_url=node.url) as http:
        # One keep-alive connection: a control request, then a stream read on the same
        # connection (served by the ASGI path), then more control requests.
        stream_id = (await http.post("/v1/streams/top", json={})).text
        async with http.stream(
            "GET", f"/v1/streams/{stream_id}", headers={"Accept": "text/event-stream"}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("event: init"):
                    break
        assert (await http.get("/healthz")).status_code == 200


async def test_a_resume_is_handed_to_the_app(node: RunningNode, client: SkiffClient) -> None:
    stream_id = await client.create_stream("top", {})
    await client.patch("votes", [("v3", vote(1, "cy"))])
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    writer.write(request(stream_id, f"Last-Event-ID: {RUN}/0"))
    data = await read_until(reader, b"\n\n\r\n")
    assert b"event: update\nid: run-1/1\ndata: [[1,[2]]]" in data
    writer.close()


async def test_a_deleted_stream_ends_its_response(node: RunningNode, client: SkiffClient) -> None:
    stream_id = await client.create_stream("top", {})
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    writer.write(request(stream_id))
    await read_until(reader, b"event: init")
    await client.delete_stream(stream_id)
    ended = await read_until(reader, b"0\r\n\r\n")
    assert ended.endswith(b"0\r\n\r\n")
    assert await reader.read() == b""  # and the connection is closed
    writer.close()


async def test_a_client_that_stops_reading_is_dropped(
    node: RunningNode, client: SkiffClient
) -> None:
    stream_id = await client.create_stream("by_author", {"author": "ann"})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", _port(node)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(request(stream_id))
    await read_until(reader, b"event: init")
    transport = writer.transport
    assert isinstance(transport, asyncio.ReadTransport)
    transport.pause_reading()  # and never read again
    title = "x" * 200_000
    for n in range(60):
        await client.patch("posts", [(100 + n, [{"title": title, "author": "ann"}])])
        if node.hub.reader_count == 0:
            break
    # Past the send timeout (0.5 s) with the socket full, the node drops the client.
    await eventually(lambda: node.hub.reader_count == 0)
    writer.close()


async def test_shutdown_ends_native_streams(config: ServeConfig) -> None:
    async with running(make_service(), config, run=RUN) as node:
        async with SkiffClient(node.url) as client:
            stream_id = await client.create_stream("top", {})
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
        writer.write(request(stream_id))
        await read_until(reader, b"event: init")
        node.stop()
        ended = await read_until(reader, b"0\r\n\r\n")
        assert ended.endswith(b"0\r\n\r\n")
        await node.wait_closed()
        writer.close()


async def test_a_read_waits_for_an_open_tick(node: RunningNode, client: SkiffClient) -> None:
    """A leader holds a tick open while Redis makes it durable: a new reader's init must not
    show its changes before they are committed (nor after they are rolled back)."""
    stream_id = await client.create_stream("top", {})
    engine = node.hub.engine
    pending = engine.begin({"votes": [("v3", vote(1, "cy"))]})
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(node))
    writer.write(request(stream_id))
    await asyncio.sleep(0.05)
    pending.abort()
    data = await read_until(reader, b"\n\n\r\n")
    # The rolled-back vote never shows.
    assert b"event: init\nid: run-1/0\ndata: [[1,[1]],[2,[1]]]\n\n" in data
    writer.close()
