"""The proxy's ASGI application: docs/protocol.md's routes, each sent to the right node.

| route | goes to |
|---|---|
| `POST /v1/streams/{resource}` | a follower (proxy/streams.py): 201 and a stream id naming it |
| `GET /v1/streams/{id}` | the stream's follower, bytes relayed as they come (re-homed if gone) |
| `DELETE /v1/streams/{id}` | that follower, and the registry |
| `PATCH /v1/inputs/{collection}` | the leader (proxy/writes.py) |
| `POST /v1/snapshot/{resource}[/lookup]` | any serving follower |
| `GET /healthz`, `/v1/healthcheck` | the proxy itself: 503 without Redis or without a ready node |
| `GET /metrics` | the proxy's Prometheus metrics |
| `GET /v1/admin/nodes` | the proxy's view of membership |
| `GET /`, `/static/*`, `/_skiff/*` | the example app and the status page (proxy/web.py) |

Security: with a control token configured, PATCH, DELETE and admin routes need
`Authorization: Bearer <token>` (401 otherwise, checked before anything is forwarded; compared
in constant time). With identity tokens configured, a token presented is verified here (401
before anything is forwarded), writes need its scope, a stream is its creator's
(proxy/streams.py), and the token is passed on to the node, which verifies it again
(broker/http/access.py). Nodes are only ever reached at the URLs they registered. Request
bodies are bounded (413). CORS headers are added only for the configured origins. Every error
the proxy produces itself is `{"error": message}`; a node's replies are relayed with their
status.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.http.accept import accepts_event_stream
from broker.http.access import Caller
from broker.http.bodies import read_body
from broker.http.errors import HttpError, error_response, shared_handlers
from broker.http.paths import stream_read_id
from broker.json_bytes import JsonDecodeError, loads
from broker.store.keyspace import RateAction
from proxy.cluster import routing
from proxy.errors import NodeUnavailableError, NoNodeError
from proxy.gateway import Gateway
from proxy.identity import AddressIdentity, ClientIdentity, subject_key
from proxy.passthrough import StreamRelay
from proxy.streams import Opened
from proxy.upstream import Reply, segment
from proxy.web import web_routes

_READ_ATTEMPTS: Final = 2
_CORS_HEADERS: Final = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"]


def create_app(gateway: Gateway, identity: ClientIdentity | None = None) -> Starlette:
    """The proxy's app; `identity` keys its rate limits (proxy/identity.py; by default the
    client address, the control token's holder unlimited)."""
    endpoints = _Endpoints(gateway, identity)
    routes = [
        Route("/healthz", endpoints.health, methods=["GET"]),
        Route("/v1/healthcheck", endpoints.health, methods=["GET"]),
        Route("/metrics", endpoints.metrics, methods=["GET"]),
        Route("/v1/inputs/{collection}", endpoints.patch_input, methods=["PATCH"]),
        Route("/v1/streams/{resource}", endpoints.create_stream, methods=["POST"]),
        Route("/v1/streams/{stream_id}", endpoints.delete_stream, methods=["DELETE"]),
        Route("/v1/snapshot/{resource}", endpoints.snapshot, methods=["POST"]),
        Route("/v1/snapshot/{resource}/lookup", endpoints.lookup, methods=["POST"]),
        Route("/v1/admin/nodes", endpoints.nodes, methods=["GET"]),
        *web_routes(gateway),  # `/` (the example app) and `/_skiff/` (status): proxy/web.py
    ]
    middleware = [Middleware(_CountRequests, gateway=gateway)]
    origins = list(gateway.config.cors_origins)
    cors_options: dict[str, Any] = {
        "allow_origins": origins,
        "allow_methods": ["GET", "POST", "PATCH", "DELETE"],
        "allow_headers": _CORS_HEADERS,
        "allow_credentials": "*" not in origins,
        "max_age": 600,
    }
    if origins:
        middleware.append(Middleware(CORSMiddleware, **cors_options))
    # The stream reads' CORS headers come from the same middleware's rules.
    cors = CORSMiddleware(_no_app, **cors_options) if origins else None
    return ProxyApp(
        _StreamReads(endpoints, gateway, cors),
        routes=routes,
        middleware=middleware,
        exception_handlers=shared_handlers(),
    )


class ProxyApp(Starlette):
    """Starlette, with `GET /v1/streams/{id}` answered before routing and middleware.

    A relayed stream lives as long as its client, and whatever frames the request passed
    through stay alive with it and run on every chunk it sends; served here it carries only the
    relay (proxy/passthrough.py). It is counted and given CORS headers like every other route.
    """

    def __init__(self, streams: _StreamReads, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            stream_id = stream_read_id(scope["path"])
            if stream_id is not None:
                await self._streams(stream_id, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


_STREAM_ROUTE: Final = "/v1/streams/{stream_id}"


class _StreamReads:
    """`GET /v1/streams/{id}` for ProxyApp: errors mapped, counted and CORS-decorated as the
    middleware stack would."""

    def __init__(
        self, endpoints: _Endpoints, gateway: Gateway, cors: CORSMiddleware | None
    ) -> None:
        self._endpoints = endpoints
        self._requests = gateway.metrics.requests
        self._cors = cors

    async def __call__(self, stream_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        try:
            query = scope.get("query_string", b"").decode("latin-1")
            response = await self._endpoints.open_stream(stream_id, headers, query)
        except HttpError as err:
            response = error_response(err.status, err.message)
        if isinstance(response, StreamRelay):
            status = response.status
            response.extra_headers = await self._cors_headers(headers)
            self._requests.labels(_STREAM_ROUTE, str(status)).inc()
            await response(scope, receive, send)
            return
        self._requests.labels(_STREAM_ROUTE, str(response.status_code)).inc()
        if self._cors is not None:
            send = functools.partial(self._cors.send, send=send, request_headers=headers)
        await response(scope, receive, send)

    async def _cors_headers(self, request_headers: Headers) -> list[tuple[bytes, bytes]]:
        if self._cors is None:
            return []
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}

        async def keep(message: Message) -> None:
            pass

        await self._cors.send(start, keep, request_headers)
        return list(start["headers"])


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the CORS rules of stream reads wrap no application")


class _Endpoints:
    def __init__(self, gateway: Gateway, identity: ClientIdentity | None) -> None:
        self._gateway = gateway
        self._config = gateway.config
        self._access = gateway.access
        self._identity = identity or AddressIdentity(self._access.control)

    async def _within_rate(self, action: RateAction, request: Request, caller: Caller) -> None:
        """429 with Retry-After when the client is over its `action` limit: checked before the
        body is read or anything is forwarded, so a refused request costs no node anything.
        A verified user counts as themselves wherever they connect from; anyone else by
        address; the operator (control token) not at all."""
        rates = self._gateway.rates
        if caller.operator or rates.limit(action).off:
            return
        key = subject_key(caller.subject) if caller.subject else self._identity(request)
        verdict = await rates.check(action, key)
        if not verdict.allowed:
            self._gateway.metrics.rate_limited.labels(action).inc()
            raise HttpError(
                429,
                f"too many {'stream creations' if action == 'streams' else 'writes'}; "
                f"retry in {verdict.retry_after_header} s",
                headers={"Retry-After": verdict.retry_after_header},
            )

    async def health(self, request: Request) -> Response:
        ready, reason = self._gateway.ready()
        cluster = self._gateway.membership.cluster
        body = {
            "status": "ok" if ready else reason,
            "role": "proxy",
            "nodes": len(cluster.nodes),
            "serving": sum(1 for n in cluster.nodes.values() if routing.serving(n)),
            "leader": cluster.leader_id,
        }
        if not ready:
            return JSONResponse({"error": reason, **body}, status_code=503)
        return JSONResponse(body)

    async def metrics(self, request: Request) -> Response:
        membership = self._gateway.membership
        self._gateway.metrics.observe_cluster(membership.cluster, membership.healthy)
        return await self._gateway.metrics.endpoint(request)

    async def nodes(self, request: Request) -> Response:
        self._access.require_operator(await self._access.caller(request.headers, cookie=False))
        cluster = self._gateway.membership.cluster
        return JSONResponse(
            {
                "leader": cluster.leader_id,
                "nodes": [
                    {
                        "node_id": n.node_id,
                        "role": n.role,
                        "url": n.url,
                        "ready": n.ready,
                        "draining": n.draining,
                        "serving": routing.serving(n),
                        "epoch": n.epoch,
                        "applied": n.applied,
                        "streams": n.streams,
                        "capacity": n.capacity,
                    }
                    for n in sorted(cluster.nodes.values(), key=lambda n: n.node_id)
                ],
            }
        )

    async def patch_input(self, request: Request) -> Response:
        collection = request.path_params["collection"]
        caller = await self._access.caller(request.headers, cookie=False)
        self._access.require_write(caller, collection)
        await self._within_rate("writes", request, caller)
        body = await read_body(request, self._config.max_body_bytes, self._config.body_timeout_s)
        key = request.headers.get("idempotency-key") or None
        reply = await self._gateway.writes.patch(collection, body, key, caller.token)
        return _relay(reply)

    async def create_stream(self, request: Request) -> Response:
        caller = await self._access.caller(request.headers)
        await self._within_rate("streams", request, caller)
        body = await read_body(request, self._config.max_body_bytes, self._config.body_timeout_s)
        try:
            params = loads(body) if body.strip() else {}
        except JsonDecodeError as err:
            raise HttpError(400, f"malformed JSON: {err}") from err
        reply = await self._gateway.streams.create(
            request.path_params["resource"], body if body.strip() else b"{}", params, caller
        )
        return _relay(reply)

    async def open_stream(
        self, stream_id: str, headers: Headers, query: str = ""
    ) -> Response | StreamRelay:
        if not accepts_event_stream(headers.get("accept", "")):
            raise HttpError(406, "streams are served as text/event-stream only")
        caller = await self._access.caller(headers, query, in_query=True)
        opened = await self._gateway.streams.open(stream_id, headers.get("last-event-id"), caller)
        if isinstance(opened, Reply):
            return _relay(opened)
        return self._relay_stream(stream_id, opened)

    async def delete_stream(self, request: Request) -> Response:
        caller = await self._access.caller(request.headers, cookie=False)
        return _relay(await self._gateway.streams.delete(request.path_params["stream_id"], caller))

    async def snapshot(self, request: Request) -> Response:
        path = f"/v1/snapshot/{segment(request.path_params['resource'])}"
        return await self._read(request, path)

    async def lookup(self, request: Request) -> Response:
        path = f"/v1/snapshot/{segment(request.path_params['resource'])}/lookup"
        return await self._read(request, path)

    async def _read(self, request: Request, path: str) -> Response:
        caller = await self._access.caller(request.headers)
        body = await read_body(request, self._config.max_body_bytes, self._config.body_timeout_s)
        tried: set[str] = set()
        for _ in range(_READ_ATTEMPTS):
            try:
                node = routing.choose_reader(self._gateway.membership.cluster, exclude=tried)
            except NoNodeError as err:
                raise HttpError(503, str(err)) from err
            try:
                upstream = self._gateway.upstream
                reply = await upstream.request(
                    node, "POST", path, content=body, headers=upstream.read_headers(),
                    user_token=caller.token,
                )  # fmt: skip
            except NodeUnavailableError:
                # Reads change nothing: another node may answer instead.
                self._gateway.metrics.upstream_errors.labels(node.node_id).inc()
                tried.add(node.node_id)
                continue
            if reply.status != 503:
                return _relay(reply)
            tried.add(node.node_id)
        raise HttpError(503, "no follower could serve the read")

    def _relay_stream(self, stream_id: str, opened: Opened) -> StreamRelay:
        gateway = self._gateway
        release = gateway.keepalive.hold(stream_id)
        gateway.metrics.open_streams.inc()

        def closed() -> None:
            release()
            untrack()
            gateway.metrics.open_streams.dec()

        relay = StreamRelay(
            opened.stream, send_timeout_s=self._config.request_timeout_s, on_close=closed
        )
        untrack = gateway.relays.add(relay)
        return relay


def _relay(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, media_type=reply.content_type)


class _CountRequests:
    """Counts every answer by route template and status (`skiff_proxy_requests`)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self._app = app
        self._requests = gateway.metrics.requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("route")
                name = getattr(route, "path", "unmatched")
                self._requests.labels(name, str(message["status"])).inc()
            await send(message)

        await self._app(scope, receive, counted)
