"""The Starlette application of a node: docs/protocol.md's routes over a Hub.

The handlers are in broker/serving/endpoints.py; the status each error is answered with is
chosen in one table, broker/serving/errors.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from broker.http.paths import stream_read_id
from broker.serving.config import ServeConfig
from broker.serving.endpoints import Endpoints
from broker.serving.errors import exception_handlers
from broker.serving.hub import Hub
from broker.serving.role import LocalRole, NodeRole

Role = Literal["all", "control", "streaming"]


def create_app(
    hub: Hub,
    config: ServeConfig,
    *,
    role: Role = "all",
    node: NodeRole | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The routes `role` serves: `control` and `streaming` are the two halves of a split node.

    `node` decides how writes are carried out and when the node is ready (a single node by
    default; the leader and follower roles provide theirs). `extra_routes`: the serving layer's
    own (e.g. the drain route)."""
    node = node or LocalRole(hub)
    endpoints = Endpoints(hub, config, node)
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
    streams = endpoints if role in ("all", "streaming") else None
    return NodeApp(streams, routes=routes, exception_handlers=exception_handlers())


class NodeApp(Starlette):
    """Starlette, with `GET /v1/streams/{id}` answered before routing and middleware.

    An SSE response lives as long as its client: whatever frames and objects the request passed
    through stay alive with it. Served here, an idle stream holds only what it needs (see
    broker/serving/stream_response.py), not Starlette's middleware, router and request objects."""

    def __init__(self, streams: Endpoints | None, **kwargs: Any) -> None:
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

    def __init__(self, endpoints: Endpoints) -> None:
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._endpoints.open_stream(scope["path_params"]["stream_id"], scope, receive, send)
