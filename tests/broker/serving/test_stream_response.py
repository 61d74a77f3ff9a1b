"""ReaderResponse at the ASGI level: a client that stops reading is dropped, and the reader is
detached however the response ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker import Hub
from broker.serving.stream_response import ReaderResponse
from broker.serving.streams.subscription import Subscription
from tests.broker.conftest import HubFactory
from tests.support.helpers import vote

pytestmark = pytest.mark.timeout(10)

SCOPE = {"type": "http", "method": "GET", "path": "/v1/streams/x", "headers": []}


class Connection:
    """The server side of one connection, as the ASGI spec has it: `receive()` returns
    `http.disconnect` once the client left or the response is complete."""

    def __init__(self, block_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.ended = asyncio.Event()
        self.block_after = block_after

    async def receive(self) -> dict[str, Any]:
        await self.ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.block_after is not None and len(self.sent) >= self.block_after:
            await asyncio.Event().wait()  # the socket's buffer is full, forever
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.ended.set()

    def leave(self) -> None:
        self.ended.set()


async def serve(hub: Hub, reader: Subscription, conn: Connection) -> asyncio.Task[None]:
    """The response running, its first messages sent."""
    response = ReaderResponse(hub, reader, hub.config)
    task = asyncio.create_task(response(SCOPE, conn.receive, conn.send))
    await asyncio.sleep(0.01)
    return task


async def test_a_client_that_stops_reading_is_dropped(make_hub: HubFactory) -> None:
    hub = make_hub(send_timeout_s=0.05)
    stream = hub.create_stream("top", {})
    reader = hub.subscribe(stream)
    conn = Connection(block_after=2)  # the start and the init go out, then nothing
    task = await serve(hub, reader, conn)
    hub.apply({"votes": [("v3", vote(1, "x"))]})
    await asyncio.wait_for(task, 2)  # returns instead of raising
    assert conn.sent[1]["body"].startswith(b"event: init")
    assert reader.closed
    assert hub.reader_count == 0
    assert hub.has_stream(stream)  # it may resume


async def test_a_response_cancelled_before_its_first_chunk_detaches(hub: Hub) -> None:
    reader = hub.subscribe(hub.create_stream("top", {}))
    task = await serve(hub, reader, Connection(block_after=0))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert reader.closed
    assert hub.reader_count == 0


async def test_a_closed_reader_ends_the_response_cleanly(hub: Hub) -> None:
    stream = hub.create_stream("top", {})
    reader = hub.subscribe(stream)
    conn = Connection()
    task = await serve(hub, reader, conn)
    hub.delete_stream(stream)
    await asyncio.wait_for(task, 2)
    assert conn.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_updates_are_written_by_the_tick_itself_and_a_leaving_client_detaches(
    hub: Hub,
) -> None:
    stream = hub.create_stream("top", {})
    reader = hub.subscribe(stream)
    conn = Connection()
    task = await serve(hub, reader, conn)
    assert len(conn.sent) == 2  # start, init
    hub.apply({"votes": [("v3", vote(1, "x"))]})
    # Written during apply(): no task had to run for it.
    assert conn.sent[-1]["body"].startswith(b"event: update")
    conn.leave()
    await asyncio.wait_for(task, 2)
    assert hub.reader_count == 0
    assert hub.has_stream(stream)
