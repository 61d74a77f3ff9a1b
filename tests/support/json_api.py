"""What the external-service tests share: a recorder of callbacks, a real server for an ASGI app
(uvicorn on 127.0.0.1), and a JSON API on it whose answers the test changes as it goes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

Entry = tuple[Any, list[Any]]


class Recorder:
    """ExternalCallbacks that keep everything they are told, and the content it adds up to."""

    def __init__(self) -> None:
        self.updates: list[tuple[list[Entry], bool]] = []
        self.errors: list[object] = []
        self.content: dict[Any, list[Any]] = {}

    def update(self, entries: Sequence[Entry], is_init: bool) -> None:
        self.updates.append((list(entries), is_init))
        if is_init:
            self.content = {}
        for key, values in entries:
            if values:
                self.content[key] = list(values)
            else:
                self.content.pop(key, None)

    def error(self, reason: object) -> None:
        self.errors.append(reason)

    def loading(self) -> None:
        pass

    @property
    def inits(self) -> int:
        return sum(1 for _, is_init in self.updates if is_init)


@dataclass
class Seen:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class JsonApi:
    """Answers every GET with `body` as JSON (status `status`, after `delay_s`)."""

    body: Any = None
    status: int = 200
    delay_s: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> Response:
        self.seen.append(Seen(request.url.path, request.url.query, dict(request.headers)))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return Response("nope", status_code=self.status)
        return JSONResponse(self.body)


@asynccontextmanager
async def json_api(body: Any = None) -> AsyncIterator[JsonApi]:
    api = JsonApi(body=body)
    async with serve(Starlette(routes=[Route("/{path:path}", api.handle)])) as url:
        api.url = url
        yield api


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """Serve `app` on a free port of 127.0.0.1 until the block exits; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_config=None, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
