"""SkipExternalService against servers that misbehave (real ones, written for the test): no
init in time, a stream that ends before its init, malformed event data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from broker.external import ExternalFetchError, ExternalStreamError, SkipExternalService
from tests.support.json_api import Recorder, serve
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(10)


class Scripted:
    """A protocol server whose streams send `script` (a list of SSE frames), then hang or end."""

    def __init__(self, script: list[bytes], *, hang: bool) -> None:
        self.script = script
        self.hang = hang
        self.connections: list[str | None] = []
        self.deleted: list[str] = []

    async def create(self, request: Request) -> Response:
        return PlainTextResponse("s-1", status_code=201)

    async def delete(self, request: Request) -> Response:
        self.deleted.append(request.path_params["id"])
        return Response("{}")

    async def read(self, request: Request) -> Response:
        self.connections.append(request.headers.get("last-event-id"))

        async def frames() -> AsyncIterator[bytes]:
            for frame in self.script:
                yield frame
            if self.hang:
                await asyncio.Event().wait()

        return StreamingResponse(frames(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/streams/{resource}", self.create, methods=["POST"]),
                Route("/v1/streams/{id}", self.delete, methods=["DELETE"]),
                Route("/v1/streams/{id}", self.read, methods=["GET"]),
            ]
        )


async def test_no_init_in_time_raises_and_deletes_the_stream() -> None:
    server = Scripted([b": hello\n\n", b"event: update\ndata: []\n\n"], hang=True)
    async with serve(server.app()) as url:
        remote = SkipExternalService(url, init_timeout_s=0.3)
        with pytest.raises(ExternalStreamError, match=r"no init within 0\.3 s"):
            await remote.subscribe("s1", "r", {}, Recorder())
        await remote.shutdown()
        assert server.deleted == ["s-1"]


async def test_a_stream_that_ends_before_its_init_raises() -> None:
    server = Scripted([b"event: update\nid: 7\ndata: [[1, [2]]]\n\n"], hang=False)
    async with serve(server.app()) as url:
        remote = SkipExternalService(url)
        with pytest.raises(ExternalStreamError, match="ended before its init"):
            await remote.subscribe("s1", "r", {}, Recorder())
        await remote.shutdown()


async def test_an_error_event_before_the_init_raises() -> None:
    server = Scripted([b'event: error\ndata: {"error": "no way"}\n\n'], hang=False)
    async with serve(server.app()) as url:
        remote = SkipExternalService(url)
        with pytest.raises(ExternalStreamError, match="no way"):
            await remote.subscribe("s1", "r", {}, Recorder())
        await remote.shutdown()


async def test_malformed_data_is_an_error_and_the_stream_is_read_again() -> None:
    # Skip's own ids are plain watermarks: sent back as they came.
    script = [b"event: init\nid: 41\ndata: [[1, [1]]]\n\n", b"event: update\nid: 42\ndata: {}\n\n"]
    server = Scripted(script, hang=True)
    async with serve(server.app()) as url:
        remote = SkipExternalService(url, max_reconnect_delay_s=0.05)
        seen = Recorder()
        await remote.subscribe("s1", "r", {}, seen)
        await eventually(lambda: len(server.connections) >= 2)
        assert server.connections[:2] == [None, "41"]
        assert isinstance(seen.errors[0], ExternalStreamError)
        assert "not a list of entries" in str(seen.errors[0])
        assert seen.content == {1: [1]}
        await remote.shutdown()


async def test_a_refused_stream_read_raises() -> None:
    async def create(request: Request) -> Response:
        return PlainTextResponse("s-1", status_code=201)

    async def read(request: Request) -> Response:
        return Response("draining", status_code=503)

    app = Starlette(
        routes=[
            Route("/v1/streams/{resource}", create, methods=["POST"]),
            Route("/v1/streams/{id}", read, methods=["GET"]),
        ]
    )
    async with serve(app) as url:
        remote = SkipExternalService(url)
        with pytest.raises(ExternalFetchError, match="503 draining") as caught:
            await remote.subscribe("s1", "r", {}, Recorder())
        assert caught.value.status == 503
        await remote.shutdown()


async def test_unsubscribe_while_waiting_for_the_init_returns_quietly() -> None:
    server = Scripted([], hang=True)
    async with serve(server.app()) as url:
        remote = SkipExternalService(url)
        seen = Recorder()
        subscribing = asyncio.create_task(remote.subscribe("s1", "r", {}, seen))
        await eventually(lambda: server.connections)
        remote.unsubscribe("s1")
        await subscribing
        await eventually(lambda: server.deleted == ["s-1"])
        assert seen.updates == [] and not seen.errors
        await remote.shutdown()
