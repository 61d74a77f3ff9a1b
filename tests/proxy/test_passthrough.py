"""StreamRelay over a scripted upstream and a scripted ASGI client: bytes in, bytes out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from proxy.passthrough import StreamRelay, read_whole

pytestmark = pytest.mark.timeout(10)

EVENTS = [
    b"event: init\nid: r/1\ndata: []\n\n",
    b"event: upd",
    b"ate\nid: r/2\ndata: [[1,[2]]]\n\n",
]


class Upstream:
    """An SSE body the test feeds chunk by chunk; `fail()` breaks the connection."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.closed = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed = True

    async def open(self) -> httpx.Response:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream", "cache-control": "no-cache",
                         "content-length": "999", "connection": "keep-alive"},
                content=self.body(),
            )  # fmt: skip

        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        request = client.build_request("GET", "http://node/v1/streams/x")
        return await client.send(request, stream=True)


class Client:
    """The ASGI side: records what the relay sends; `leave()` disconnects."""

    def __init__(self, block_sends: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.block_sends = block_sends

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.block_sends and message["type"] == "http.response.body":
            await asyncio.Event().wait()  # a client that stopped reading
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def relay(
    upstream: Upstream, client: Client, stopping: asyncio.Event | None = None
) -> tuple[asyncio.Task[None], list[str]]:
    closed: list[str] = []
    response = StreamRelay(
        await upstream.open(),
        stopping=stopping or asyncio.Event(),
        send_timeout_s=0.3,
        on_close=lambda: closed.append("closed"),
    )
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    return task, closed


async def until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_chunks_are_relayed_one_by_one_unchanged() -> None:
    upstream, client = Upstream(), Client()
    task, closed = await relay(upstream, client)
    for chunk in EVENTS:
        upstream.queue.put_nowait(chunk)
        # Each chunk is sent on before the next one exists: nothing is held back.
        await until(lambda chunk=chunk: client.bodies() and client.bodies()[-1] == chunk)
    upstream.queue.put_nowait(None)  # the node ends the stream
    await task
    start = client.sent[0]
    assert start["status"] == 200
    assert dict(start["headers"]) == {
        b"content-type": b"text/event-stream", b"cache-control": b"no-cache",
        b"x-accel-buffering": b"no",
    }  # fmt: skip
    assert client.bodies() == [*EVENTS, b""]
    assert [m.get("more_body", False) for m in client.sent[1:]] == [True, True, True, False]
    assert upstream.closed and closed == ["closed"]


async def test_a_dying_node_ends_the_client_response_cleanly() -> None:
    upstream, client = Upstream(), Client()
    task, closed = await relay(upstream, client)
    upstream.queue.put_nowait(EVENTS[0])
    upstream.queue.put_nowait(EVENTS[1])  # half an event, then the connection breaks
    upstream.queue.put_nowait(httpx.ReadError("connection reset"))
    await task
    # The client gets a complete response and reconnects; the half event is never dispatched.
    assert client.bodies() == [EVENTS[0], EVENTS[1], b""]
    assert closed == ["closed"]


async def test_a_client_leaving_closes_the_node_connection() -> None:
    upstream, client = Upstream(), Client()
    task, closed = await relay(upstream, client)
    upstream.queue.put_nowait(EVENTS[0])
    await until(lambda: client.bodies() == [EVENTS[0]])
    client.gone.set()
    await task
    assert client.bodies() == [EVENTS[0]]  # nothing more sent to a gone client
    assert upstream.closed and closed == ["closed"]


async def test_proxy_shutdown_ends_every_relay() -> None:
    stopping = asyncio.Event()
    upstream, client = Upstream(), Client()
    task, closed = await relay(upstream, client, stopping)
    upstream.queue.put_nowait(EVENTS[0])
    await until(lambda: client.bodies() == [EVENTS[0]])
    stopping.set()
    await task
    assert client.bodies() == [EVENTS[0], b""]
    assert upstream.closed and closed == ["closed"]


async def test_a_client_that_stops_reading_is_dropped() -> None:
    upstream, client = Upstream(), Client(block_sends=True)
    task, closed = await relay(upstream, client)
    upstream.queue.put_nowait(EVENTS[0])
    await asyncio.wait_for(task, 2)  # the send timeout (0.3 s) ended it
    assert closed == ["closed"]


async def test_read_whole_bounds_an_error_body() -> None:
    upstream = Upstream()
    upstream.queue.put_nowait(b"x" * 10)
    upstream.queue.put_nowait(b"y" * 10)
    upstream.queue.put_nowait(None)
    response = await upstream.open()
    assert await read_whole(response, limit=15) == b"x" * 10 + b"y" * 5
    assert response.is_closed
