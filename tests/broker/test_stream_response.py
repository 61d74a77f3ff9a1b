"""ReaderResponse at the ASGI level: a client that stops reading is dropped, and the reader is
detached however the response ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker import Hub
from broker.stream_response import ReaderResponse
from tests.broker.conftest import HubFactory
from tests.broker.helpers import vote

pytestmark = pytest.mark.timeout(10)

SCOPE = {"type": "http", "method": "GET", "path": "/v1/streams/x", "headers": []}


async def never_disconnects() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_a_client_that_stops_reading_is_dropped(make_hub: HubFactory) -> None:
    hub = make_hub(send_timeout_s=0.05)
    stream = hub.create_stream("top", {})
    reader = hub.subscribe(stream)
    sent: list[dict[str, Any]] = []

    async def stuck_after_first_chunk(message: dict[str, Any]) -> None:
        sent.append(message)
        if len(sent) > 2:
            await asyncio.Event().wait()  # the socket's buffer is full, forever

    response = ReaderResponse(hub, reader, hub.config)
    task = asyncio.create_task(response(SCOPE, never_disconnects, stuck_after_first_chunk))
    await asyncio.sleep(0.01)
    hub.apply({"votes": [("v3", vote(1, "x"))]})
    await asyncio.wait_for(task, 2)  # returns instead of raising SendTimeoutError
    assert sent[1]["body"].startswith(b"event: init")
    assert reader.closed
    assert hub.reader_count == 0
    assert hub.has_stream(stream)  # it may resume


async def test_a_response_cancelled_before_its_first_chunk_detaches(hub: Hub) -> None:
    reader = hub.subscribe(hub.create_stream("top", {}))

    async def slow_send(message: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(
        ReaderResponse(hub, reader, hub.config)(SCOPE, never_disconnects, slow_send)
    )
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert reader.closed
    assert hub.reader_count == 0


async def test_a_closed_reader_ends_the_response_cleanly(hub: Hub) -> None:
    stream = hub.create_stream("top", {})
    reader = hub.subscribe(stream)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    task = asyncio.create_task(
        ReaderResponse(hub, reader, hub.config)(SCOPE, never_disconnects, send)
    )
    await asyncio.sleep(0.01)
    hub.delete_stream(stream)
    await asyncio.wait_for(task, 2)
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
