"""The handlers of a node's routes: each reads and checks its request, then asks the hub (or,
for a write, the node's role). Errors are answered by the table of broker/serving/errors.py.

Who may do what is broker/http/access.py's: the control token, and with identity tokens on,
the caller's token (its write scope, the resource being public, the stream being theirs). The
caller's claims go with every instantiate, so a resource builds from who asks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from broker.http.accept import accepts_event_stream
from broker.http.access import Access, Caller
from broker.http.bodies import read_json
from broker.http.errors import HttpError
from broker.http.limits import check_entries, check_params
from broker.http.paths import AFTER_VERSION_HEADER, STREAM_ID_HEADER
from broker.http.sse import parse_event_id
from broker.json_bytes import dumps
from broker.serving import reads
from broker.serving.config import ServeConfig
from broker.serving.errors import ANSWERED, error_for
from broker.serving.hub import Hub
from broker.serving.role import NodeRole
from broker.serving.settle import settled
from broker.serving.stream_response import ReaderResponse
from graph import UnknownCollectionError, UnknownResourceError

# How long a resuming reader may wait for this node to apply the version it last saw.
_CATCH_UP_S: Final = 2.0
_CHOSEN_STREAM_ID: Final = re.compile(r"[A-Za-z0-9_.\-]{16,200}")


class Endpoints:
    """The handlers of a node's routes over its hub (broker/serving/app.py routes them)."""

    def __init__(self, hub: Hub, config: ServeConfig, node: NodeRole) -> None:
        self._hub = hub
        self._config = config
        self._node = node
        self.access = Access(config.control_token, config.jwt)

    async def health(self, request: Request) -> Response:
        ready, reason = self._node.ready()
        body = {"status": "ok" if ready else reason, "run": self._hub.run, **self._node.status()}
        feeds = self._hub.feeds
        if feeds is not None and feeds.configured:
            body["externals"] = feeds.status()
        if not ready:
            return JSONResponse({"error": reason, **body}, status_code=503)
        return JSONResponse(body)

    async def patch_input(self, request: Request) -> Response:
        collection = request.path_params["collection"]
        # No cookie: a cross-site form can make a browser send one (a header, it cannot).
        self.access.require_write(await self.access.caller(request.headers, cookie=False),
                                  collection)  # fmt: skip
        if collection not in self._hub.engine.input_names:
            raise UnknownCollectionError(f"unknown input collection {collection!r}")
        body = await read_json(
            request, self._config.max_body_bytes, within_s=self._config.body_timeout_s
        )
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
        caller = await self.access.caller(request.headers)
        chosen = request.headers.get(STREAM_ID_HEADER)
        if chosen is not None:
            # The proxy names the streams it re-homes (the id outlives its first node); naming
            # is a control operation, and an id must fit URL paths and Redis keys.
            self.access.require_operator(caller)
            if not _CHOSEN_STREAM_ID.fullmatch(chosen):
                raise HttpError(400, f"malformed {STREAM_ID_HEADER} header")
        resource = request.path_params["resource"]
        self._require_reader(caller, resource)
        params = await read_json(
            request, self._config.max_body_bytes, empty={}, within_s=self._config.body_timeout_s
        )
        await reads.after_version(self._hub, request.headers.get(AFTER_VERSION_HEADER))
        with _nesting_guard():
            check_params(params, self._config.max_params_bytes)
            stream_id = self._hub.create_stream(
                resource,
                params,
                stream_id=chosen,
                owner=caller.subject,
                claims=self.access.claims(caller),
            )
        await reads.stream_loaded(self._hub, stream_id)
        return PlainTextResponse(stream_id, status_code=201)

    async def delete_stream(self, request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        caller = await self.access.caller(request.headers, cookie=False)
        owner = self._hub.owner_of(stream_id)
        self.access.require_stream(caller, stream_id, owner, deleting=True)
        self._hub.delete_stream(stream_id)
        return JSONResponse({})

    async def open_stream(self, stream_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /v1/streams/{id}` as bare ASGI (NodeApp): errors are mapped as on every route."""
        headers = Headers(scope=scope)
        try:
            if not accepts_event_stream(headers.get("accept", "")):
                raise HttpError(406, "streams are served as text/event-stream only")
            query = scope.get("query_string", b"").decode("latin-1")
            caller = await self.access.caller(headers, query, in_query=True)
            self.access.require_stream(caller, stream_id, self._hub.owner_of(stream_id))
            last_event_id = headers.get("last-event-id")
            if last_event_id is not None:
                await _catch_up(self._hub, last_event_id)
            # On a leader a tick may be open, waiting for Redis: an init must not show it.
            await settled(self._hub.engine)
            reader = self._hub.subscribe(
                stream_id, last_event_id, until=self.access.valid_until(caller)
            )
        except ANSWERED as err:
            await error_for(err)(scope, receive, send)
            return
        await ReaderResponse(self._hub, reader, self._config)(scope, receive, send)

    async def snapshot(self, request: Request) -> Response:
        caller = await self.access.caller(request.headers)
        resource = request.path_params["resource"]
        self._require_reader(caller, resource)
        params = await read_json(
            request, self._config.max_body_bytes, empty={}, within_s=self._config.body_timeout_s
        )
        await reads.after_version(self._hub, request.headers.get(AFTER_VERSION_HEADER))
        with _nesting_guard():
            check_params(params, self._config.max_params_bytes)
            entries = await reads.snapshot(self._hub, resource, params, self.access.claims(caller))
        return Response(dumps(entries), media_type="application/json")

    async def lookup(self, request: Request) -> Response:
        caller = await self.access.caller(request.headers)
        resource = request.path_params["resource"]
        self._require_reader(caller, resource)
        body = await read_json(
            request, self._config.max_body_bytes, within_s=self._config.body_timeout_s
        )
        if not isinstance(body, dict) or "key" not in body:
            raise HttpError(400, 'the body must be an object {"key": k, "params": p}')
        await reads.after_version(self._hub, request.headers.get(AFTER_VERSION_HEADER))
        with _nesting_guard():
            check_params(body.get("params", {}), self._config.max_params_bytes)
            check_entries([[body["key"], []]], self._config.max_key_bytes, 0)
            values = await reads.lookup(
                self._hub, resource, body["key"], body.get("params", {}),
                self.access.claims(caller),
            )  # fmt: skip
        return Response(dumps(values), media_type="application/json")

    def _require_reader(self, caller: Caller, resource: str) -> None:
        """With auth on, a resource that is not public needs a token (unknown: 404)."""
        if not self.access.enabled:
            return
        cls = self._hub.engine.service.resources.get(resource)
        if cls is None:
            raise UnknownResourceError(f"unknown resource {resource!r}")
        self.access.require_reader(caller, resource, public=bool(getattr(cls, "public", False)))


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
