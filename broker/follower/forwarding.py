"""Writes on a follower: forwarded to the leader, its answer returned unchanged.

The leader is the holder of the lease (`<term>:<node id>/<pid>-<random>`); its heartbeat record
(`node:<node id>`) gives the URL it advertises. The request body is passed through as bytes, with
`Content-Type`, `Idempotency-Key`, `Authorization` and the user's token (`X-Skiff-User-Token`,
as the proxy sends it), so the leader checks the same credentials; the leader's status, body and
content type come back as they are. With no lease holder, or a holder that announced no URL, the
follower answers 503 `{"error": "no leader"}` (with the holder's id when there is one).

A request that never reached the leader (connection refused: it just died) is retried once
against the new lease holder, if the lease moved; one that may have reached it (a timeout, a
connection cut mid-reply) is not, since the write may have been applied: the client decides,
and retrying with the same Idempotency-Key is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

import httpx
from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.cluster.locator import LeaderAddress, LeaderLocator
from broker.errors import NotLeaderError, UnavailableError
from broker.http.access import USER_TOKEN_HEADER, Access
from broker.http.bodies import read_body
from broker.serving.config import ServeConfig
from broker.store.codec import CodecError
from graph import UnknownCollectionError

logger = logging.getLogger("skiff.broker")

#: How long a forwarded write may take (the leader makes it durable in Redis first).
FORWARD_TIMEOUT_S: Final = 10.0
#: Marks a forwarded request, so a misrouted one is never forwarded twice.
FORWARDED_HEADER: Final = "x-skiff-forwarded-by"
_PASSED_HEADERS: Final = ("content-type", "idempotency-key", "authorization", USER_TOKEN_HEADER)


class WriteForwarder:
    """Sends one write to the leader and hands its answer back."""

    def __init__(self, locator: LeaderLocator, client: httpx.AsyncClient, node_id: str) -> None:
        self._locator = locator
        self._client = client
        self._node_id = node_id

    async def forward(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        passed = {name: headers[name] for name in _PASSED_HEADERS if name in headers}
        passed[FORWARDED_HEADER] = self._node_id
        tried: str | None = None
        for _ in range(2):
            leader = await self._leader()
            if leader.url is None or leader.url == tried:
                break
            try:
                reply = await self._client.patch(
                    leader.url.rstrip("/") + path, content=body, headers=passed
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                # Nothing was sent: safe to try the new lease holder, if the lease moved.
                logger.info(
                    "leader %s at %s refused the write: %s", leader.node_id, leader.url, err
                )
                self._locator.forget()
                tried = leader.url
                continue
            except httpx.HTTPError as err:
                self._locator.forget()
                raise UnavailableError(
                    f"leader {leader.node_id} at {leader.url} did not answer ({err!r}): the write "
                    "may or may not be applied; retry it with the same Idempotency-Key",
                ) from err
            if reply.status_code == 503:
                self._locator.forget()
            return Response(
                reply.content,
                status_code=reply.status_code,
                media_type=reply.headers.get("content-type"),
            )
        if tried is not None:
            raise NotLeaderError(f"leader {leader.node_id} at {tried} is unreachable")
        raise NotLeaderError(f"no leader: {leader.node_id} has no known address")

    async def _leader(self) -> LeaderAddress:
        try:
            leader = await self._locator.leader()
        except (redis_errors.RedisError, OSError, CodecError) as err:
            raise NotLeaderError(f"no leader: cannot read the lease ({err})") from err
        if leader is None:
            raise NotLeaderError("no leader")
        return leader


def forwarding_route(
    forwarder: WriteForwarder, config: ServeConfig, input_names: tuple[str, ...]
) -> Route:
    """`PATCH /v1/inputs/{collection}` of a follower: checked like a local write (401, 403,
    404, 413), then forwarded. Listed before the app's own route, it takes its place."""
    access = Access(config.control_token, config.jwt)

    async def patch_input(request: Request) -> Response:
        collection = request.path_params["collection"]
        access.require_write(await access.caller(request.headers, cookie=False), collection)
        if collection not in input_names:
            raise UnknownCollectionError(f"unknown input collection {collection!r}")
        if FORWARDED_HEADER in request.headers:
            raise NotLeaderError("no leader: this node is a follower and the write was forwarded")
        body = await read_body(request, config.max_body_bytes, config.body_timeout_s)
        return await forwarder.forward(f"/v1/inputs/{quote(collection, safe='')}", body,
                                       request.headers)  # fmt: skip

    return Route("/v1/inputs/{collection}", patch_input, methods=["PATCH"])
