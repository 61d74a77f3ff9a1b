"""The proxy's web pages: the example app at `/`, the status page at `/_skiff/`.

| route | serves |
|---|---|
| `GET /` | `static/index.html`: the hackernews example's front end |
| `GET /static/{file}` | `proxy/static/`: the pages' CSS and ES modules, `skiff.js` among them |
| `GET /_skiff/` | `static/status.html`: the cluster status page |
| `GET /_skiff/status` | the cluster status, once, as JSON (proxy/status.py) |
| `GET /_skiff/events` | the same as an event stream: `event: status` every second |
| `POST /demo/login` | a token for the example app's user (proxy/demo_login.py; 404 unless on) |

Everything is a file of this package (no build step, nothing fetched from elsewhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from proxy.demo_login import demo_login_route
from proxy.gateway import Gateway
from proxy.status import StatusSource

STATIC_DIR: Final = Path(__file__).parent / "static"
_NO_CACHE: Final = {"Cache-Control": "no-cache"}


def web_routes(gateway: Gateway) -> list[BaseRoute]:
    pages = _Pages(StatusSource(gateway))
    return [
        Route("/", pages.app, methods=["GET"]),
        Route("/_skiff", pages.to_status, methods=["GET"]),
        Route("/_skiff/", pages.status_page, methods=["GET"]),
        Route("/_skiff/status", pages.status, methods=["GET"]),
        Route("/_skiff/events", pages.events, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        demo_login_route(gateway.config),
    ]


class _Pages:
    def __init__(self, source: StatusSource) -> None:
        self._source = source

    async def app(self, request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_NO_CACHE)

    async def to_status(self, request: Request) -> RedirectResponse:
        return RedirectResponse("/_skiff/")

    async def status_page(self, request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "status.html", headers=_NO_CACHE)

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse(await self._source.read(), headers=_NO_CACHE)

    async def events(self, request: Request) -> EventSourceResponse:
        # A handful of operators' pages, not the resource streams' hot path: sse-starlette's
        # general response (its own disconnect watch, send timeout and keep-alive comments)
        # fits here; broker/serving/stream_response.py explains why resource streams use bare ASGI.
        return EventSourceResponse(
            self._source.events(),
            headers={**_NO_CACHE, "X-Accel-Buffering": "no"},
            ping=15,
            send_timeout=10,
        )
