"""The SSE response of one connected reader: pre-encoded chunks from its Subscription, written
with bare ASGI messages.

This is the path every idle stream sits on and every fan-out goes through, so it carries as
little as possible per connection: the request's own task, waiting in `receive()` for the client
to go away, while a ChunkWriter (broker/http/chunks.py) writes each chunk from Hub.publish itself.
A general-purpose SSE response (sse-starlette's EventSourceResponse, which the proxy's status
feed uses) runs a task group of four tasks with their cancel scopes and wraps every send in
one: about 11 KB per connection and ~40 µs per event, at 10,000 streams and 1,000-subscriber
fan-outs the largest costs of a node (docs/benchmarks.md, "Issue 4").

Heartbeats come from the Subscription (the hub beats every reader that has been quiet) and are
Skip's empty update, not a comment.
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.types import Message, Receive, Scope, Send

from broker.http.chunks import ChunkWriter
from broker.http.eager_send import send_within
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.serving.streams.subscription import Subscription

logger = logging.getLogger("skiff.broker")

HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # Tell buffering intermediaries (nginx) to pass events through at once.
    (b"x-accel-buffering", b"no"),
]


class ReaderResponse:
    """Streams a reader's chunks until it is closed or the client goes away; the reader is
    detached from the hub however the response ends (cancellation included)."""

    __slots__ = ("_config", "_hub", "_reader")

    def __init__(self, hub: Hub, reader: Subscription, config: ServeConfig) -> None:
        self._hub = hub
        self._reader = reader
        self._config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reader = self._reader
        try:
            # A fresh message: a middleware may add headers to the one it is given.
            start = {"type": "http.response.start", "status": 200, "headers": list(HEADERS)}
            await self._send(send, start)
            await ChunkWriter(reader, send, self._config.send_timeout_s).run(receive)
        except TimeoutError:
            # A client that stops reading while its socket stays open is indistinguishable from
            # a dead one: drop it like a disconnect rather than report an application error.
            logger.info("closing stream %s: its client stopped reading", reader.stream_id)
        except OSError:
            pass  # the connection failed under a send: the client is gone
        finally:
            self._hub.unsubscribe(reader)

    async def _send(self, send: Send, message: Message) -> None:
        # uvicorn's send only waits when the socket's write buffer is full, that is when the
        # client stopped reading; bound that wait.
        await send_within(send, message, self._config.send_timeout_s)
