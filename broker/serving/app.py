"""The Starlette application: PROTOCOL.md's routes over a Hub.

Error mapping (every 4xx body is `{"error": "<message>"}`):
- 400: malformed JSON, a PATCH body that is not a list of `[key, [values]]` entries, keys or
  values that are not JSON, JSON nested too deeply to key on, params a resource rejects.
- 401: a write, a delete, a stream creation naming its id, or an admin request without the
  configured control token.
- 404: unknown collection, resource, stream id or route.
- 409: `X-Skiff-Stream-Id` names an existing stream of another resource instance.
- 406: `GET /v1/streams/{id}` without `Accept: text/event-stream`.
- 413: a body over `max_body_bytes`.
- 422: the request was well formed but user code (a mapper, reducer or lazy compute) raised on
  it; the message names the mapper and the key. Like every rejection, the tick is rolled back
  and the state is exactly as before.
- 503: the node is draining for shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from broker.errors import DrainingError, StreamIdConflictError, UnknownStreamError
from broker.http.accept import accepts_event_stream
from broker.http.auth import ControlToken
from broker.http.bodies import read_json
from broker.http.errors import HttpError
from broker.http.limits import check_entries, check_params
from broker.http.paths import STREAM_ID_HEADER, stream_read_id
from broker.http.sse import parse_event_id
from broker.json_bytes import dumps
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.serving.role import LocalRole, NodeRole
from broker.serving.stream_response import ReaderResponse
from graph import (
    CycleError,
    InvalidWriteError,
    KeyLookupError,
    NotJsonError,
    ParamsRejectedError,
    UnknownCollectionError,
    UnknownResourceError,
    UserCodeError,
)

Role = Literal["all", "control", "streaming"]
Json = Any

logger = logging.getLogger("skiff.broker")

_STATUS: dict[type[Exception], int] = {
    UnknownCollectionError: 404,
    UnknownResourceError: 404,
    UnknownStreamError: 404,
    InvalidWriteError: 400,
    NotJsonError: 400,
    ParamsRejectedError: 400,
    UserCodeError: 422,
    KeyLookupError: 422,
    CycleError: 422,
    DrainingError: 503,
    StreamIdConflictError: 409,
}

# How long a resuming reader may wait for this node to apply the version it last saw.
_CATCH_UP_S = 2.0

_CHOSEN_STREAM_ID = re.compile(r"[A-Za-z0-9_.\-]{16,200}")


def create_app(
    hub: Hub,
    config: ServeConfig,
    *,
    role: Role = "all",
    node: NodeRole | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The routes `role` serves: `control` and `streaming` are the two halves of a split node.

    `node` decides how writes are carried out and when the node is ready (a single node by default;
    broker.leader.leadership and broker.follower.node provide theirs). `extra_routes`: the serving
    layer's own (e.g. the drain route)."""
    node = node or LocalRole(hub)
    endpoints = _Endpoints(hub, config, node)
    routes: list[BaseRoute] = [
        Route("/healthz", endpoints.health, methods=["GET"]),
        Route("/v1/healthcheck", endpoints.health, methods=["GET"]),
        *node.routes(),
        *extra_routes,
    ]
    if role in ("all", "streaming"):
        # NodeApp answers these before routing; the route gives other methods their 405 and
        # serves the app mounted inside another one.
        routes.append(Route("/v1/streams/{stream_id}", _StreamRoute(endpoints), methods=["GET"]))
    if role in ("all", "control"):
        routes += [
            Route("/v1/inputs/{collection}", endpoints.patch_input, methods=["PATCH"]),
            Route("/v1/streams/{resource}", endpoints.create_stream, methods=["POST"]),
            Route("/v1/streams/{stream_id}", endpoints.delete_stream, methods=["DELETE"]),
            Route("/v1/snapshot/{resource}", endpoints.snapshot, methods=["POST"]),
            Route("/v1/snapshot/{resource}/lookup", endpoints.lookup, methods=["POST"]),
        ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        cls: _mapped_error for cls in _STATUS
    }
    handlers[HttpError] = _api_error
    handlers[HTTPException] = _http_error
    handlers[500] = _internal_error
    streams = endpoints if role in ("all", "streaming") else None
    return NodeApp(streams, routes=routes, exception_handlers=handlers)


class NodeApp(Starlette):
    """Starlette, with `GET /v1/streams/{id}` answered before routing and middleware.

    An SSE response lives as long as its client: whatever frames and objects the request passed
    through stay alive with it. Served here, an idle stream holds only what it needs (see
    broker/serving/stream_response.py), not Starlette's middleware, router and request objects."""

    def __init__(self, streams: _Endpoints | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._streams is not None and scope["type"] == "http" and scope["method"] == "GET":
            stream_id = stream_read_id(scope["path"])
            if stream_id is not None:
                await self._streams.open_stream(stream_id, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class _StreamRoute:
    """`GET /v1/streams/{stream_id}` as a bare ASGI endpoint of the router."""

    def __init__(self, endpoints: _Endpoints) -> None:
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoints.open_stream(scope["path_params"]["stream_id"], scope, receive, send)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Endpoints:
    def __init__(self, hub: Hub, config: ServeConfig, node: NodeRole) -> None:
        self._hub = hub
        self._config = config
        self._node = node
        self._token = ControlToken(config.control_token)

    async def health(self, request: Request) -> Response:
        ready, reason = self._node.ready()
        body = {"status": "ok" if ready else reason, "run": self._hub.run, **self._node.status()}
        if not ready:
            return JSONResponse({"error": reason, **body}, status_code=503)
        return JSONResponse(body)

    async def patch_input(self, request: Request) -> Response:
        self._token.require(request.headers)
        collection = request.path_params["collection"]
        if collection not in self._hub.engine.input_names:
            raise HttpError(404, f"unknown input collection {collection!r}")
        body = await read_json(request, self._config.max_body_bytes)
        if not isinstance(body, list):
            raise HttpError(400, "the body must be a list of [key, [values...]] entries")
        idempotency_key = request.headers.get("idempotency-key") or None
        if idempotency_key is not None and not _valid_idempotency_key(idempotency_key):
            raise HttpError(400, "Idempotency-Key must be 1..200 printable ASCII characters")
        with _nesting_guard():
            check_entries(body, self._config.max_key_bytes, self._config.max_value_bytes)
            version = await self._node.write(collection, body, idempotency_key)
        return JSONResponse({"version": version})

    async def create_stream(self, request: Request) -> Response:
        chosen = request.headers.get(STREAM_ID_HEADER)
        if chosen is not None:
            # The proxy names the streams it re-homes (the id outlives its first node); naming
            # is a control operation, and an id must fit URL paths and Redis keys.
            self._token.require(request.headers)
            if not _CHOSEN_STREAM_ID.fullmatch(chosen):
                raise HttpError(400, f"malformed {STREAM_ID_HEADER} header")
        params = await read_json(request, self._config.max_body_bytes, empty={})
        with _nesting_guard():
            check_params(params, self._config.max_params_bytes)
            stream_id = self._hub.create_stream(
                request.path_params["resource"], params, stream_id=chosen
            )
        return PlainTextResponse(stream_id, status_code=201)

    async def delete_stream(self, request: Request) -> Response:
        self._token.require(request.headers)
        self._hub.delete_stream(request.path_params["stream_id"])
        return JSONResponse({})

    async def open_stream(self, stream_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /v1/streams/{id}` as bare ASGI (NodeApp): errors are mapped as on every route."""
        headers = Headers(scope=scope)
        try:
            if not accepts_event_stream(headers.get("accept", "")):
                raise HttpError(406, "streams are served as text/event-stream only")
            last_event_id = headers.get("last-event-id")
            if last_event_id is not None:
                await _catch_up(self._hub, last_event_id)
            reader = self._hub.subscribe(stream_id, last_event_id)
        except HttpError as err:
            await error_response(err.status, err.message)(scope, receive, send)
            return
        except tuple(_STATUS) as err:
            await error_response(_status_of(err), str(err))(scope, receive, send)
            return
        await ReaderResponse(self._hub, reader, self._config)(scope, receive, send)

    async def snapshot(self, request: Request) -> Response:
        params = await read_json(request, self._config.max_body_bytes, empty={})
        with _nesting_guard():
            check_params(params, self._config.max_params_bytes)
            entries = self._hub.snapshot(request.path_params["resource"], params)
        return Response(dumps(entries), media_type="application/json")

    async def lookup(self, request: Request) -> Response:
        body = await read_json(request, self._config.max_body_bytes)
        if not isinstance(body, dict) or "key" not in body:
            raise HttpError(400, 'the body must be an object {"key": k, "params": p}')
        with _nesting_guard():
            check_params(body.get("params", {}), self._config.max_params_bytes)
            check_entries([[body["key"], []]], self._config.max_key_bytes, 0)
            values = self._hub.lookup(
                request.path_params["resource"], body["key"], body.get("params", {})
            )
        return Response(dumps(values), media_type="application/json")



async def _catch_up(hub: Hub, last_event_id: str) -> None:
    """Wait (briefly) until this node has applied the version a resuming client last saw.

    A client re-homed by the proxy, or sent to another follower, may have seen a version this
    follower has not applied yet (followers lag the leader by milliseconds). Answering at once
    would send it an init from its past; waiting lets it resume with an update instead."""
    since = parse_event_id(last_event_id)
    if since is None:
        return
    run, version = since
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CATCH_UP_S
    # Polled: versions advance in several places (ticks, resyncs) and only this rare path,
    # a resume that is ahead of the node, needs to hear about it.
    while hub.run == run and hub.engine.version < version and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.002)


def _valid_idempotency_key(key: str) -> bool:
    # The key becomes part of a Redis key name (broker.store.keyspace bounds it to 200 bytes).
    return 0 < len(key) <= 200 and key.isascii() and key.isprintable()


@contextmanager
def _nesting_guard() -> Iterator[None]:
    # orjson accepts JSON nested 1024 deep and the engine walks keys, values and params
    # recursively. It caps the depth itself (NotJsonError), but should any path miss the cap, the
    # stack overflows before state changes: the client's input, so a 400, never a 500.
    try:
        yield
    except RecursionError as err:
        raise HttpError(400, "JSON nested too deeply") from err


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return error_response(exc.status, exc.message)


async def _mapped_error(request: Request, exc: Exception) -> Response:
    return error_response(_status_of(exc), str(exc))


def _status_of(exc: Exception) -> int:
    return next(code for cls, code in _STATUS.items() if isinstance(exc, cls))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # ServerErrorMiddleware still logs the traceback and re-raises to the server.
    return error_response(500, "internal server error")
