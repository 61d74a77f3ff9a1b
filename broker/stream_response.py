"""The SSE response of one connected reader: pre-encoded chunks from its Subscription."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.types import Receive, Scope, Send

from broker.config import ServeConfig
from broker.hub import Hub
from broker.subscription import Subscription

logger = logging.getLogger("skiff.broker")


class ReaderResponse(EventSourceResponse):
    """Streams a reader's chunks until it is closed or the client goes away.

    Heartbeats come from the reader itself (an idle wait that times out), so sse-starlette's own
    ping task is disabled: the heartbeat bytes are Skip's empty update, not a comment.
    """

    def __init__(self, hub: Hub, reader: Subscription, config: ServeConfig) -> None:
        # On SIGTERM sse-starlette notices the exit on its own and would cancel the stream
        # mid-chunk, racing the node's ordered shutdown; the grace period lets the hub's drain
        # end the stream cleanly first (it closes every reader as shutdown begins).
        super().__init__(
            _chunks(reader, config.heartbeat_s),
            ping=0,
            send_timeout=config.send_timeout_s,
            shutdown_grace_period=config.shutdown_timeout_s,
        )
        self._hub = hub
        self._reader = reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # A client that stops reading while its socket stays open is indistinguishable from
            # a dead one: drop it like a disconnect rather than report an application error.
            logger.info("closing stream %s: its client stopped reading", self._reader.stream_id)
        finally:
            # Here rather than in the generator: a response cancelled before its first chunk
            # never starts the generator, whose `finally` would then never run.
            self._hub.unsubscribe(self._reader)


async def _chunks(reader: Subscription, heartbeat_s: float) -> AsyncIterator[bytes]:
    while True:
        chunk = await reader.next_chunk(heartbeat_s)
        if chunk is None:
            return
        yield chunk
