"""Keeping reads out of a leader's open ticks.

A leader computes a tick, holds it open while Redis makes it durable, and only then commits
(graph.Engine.begin). Meanwhile the engine must not create a resource instance, and whatever
reads it would see changes that may still be rolled back. The routes that read the engine —
creating and opening streams, snapshots, lookups — are therefore served through a gate: the
leader's write lock is taken once the request body has arrived and released when the response
starts, so the hub call in between runs between two ticks. A write waits for at most one such
read (they are short: the state is read synchronously), and a read for at most one append.

The gated routes shadow the app's own (a role's routes come first in create_app) and delegate
to a second app over the same hub.
"""

from __future__ import annotations

import asyncio

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.serving.app import create_app
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.serving.role import LocalRole

# The engine-reading routes of broker.serving.app (see its create_app).
_GATED: tuple[tuple[str, list[str]], ...] = (
    ("/v1/streams/{name}", ["GET", "POST"]),
    ("/v1/snapshot/{resource}", ["POST"]),
    ("/v1/snapshot/{resource}/lookup", ["POST"]),
)


def gated_routes(hub: Hub, config: ServeConfig, gate: asyncio.Lock) -> list[Route]:
    """Routes serving the engine-reading requests of `hub` only between ticks."""
    # Writes never reach the inner app (PATCH is not gated): its role is never asked to write.
    inner = _BetweenTicks(create_app(hub, config, node=LocalRole(hub)), gate, config)
    return [Route(path, inner, methods=methods) for path, methods in _GATED]


class _BetweenTicks:
    def __init__(self, app: ASGIApp, gate: asyncio.Lock, config: ServeConfig) -> None:
        self._app = app
        self._gate = gate
        self._limit = config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The body is read before the gate is taken: a slow client must not hold writes up.
        buffered = await self._buffer(receive)
        await self._gate.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._gate.release()

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self._app(scope, replay, sending)
        finally:
            release()

    async def _buffer(self, receive: Receive) -> list[Message]:
        # Up to just past the size limit: the app answers 413 from what it has.
        messages: list[Message] = []
        size = 0
        while size <= self._limit:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return messages
