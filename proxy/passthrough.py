"""StreamRelay: a node's SSE response passed through to the client, byte for byte.

Nothing is parsed, buffered or re-encoded: each chunk read from the node's socket is sent on as
one ASGI body message, which uvicorn writes at once, so an event reaches the client as soon as
the node flushed it (heartbeats included). Three tasks run per relay, and the first to finish
ends the others:

- the pump (node -> client); it ends when the node ends the stream or its connection fails,
- a watcher of the client's disconnect,
- a watcher of the proxy's shutdown.

Whatever ended it, the node connection is closed, and the client's response is completed
cleanly when the client is still there: an EventSource then reconnects with its Last-Event-ID,
and the proxy routes the reconnect (re-homing the stream if its node is gone). A partial event
cut off by a dying node never counts: SSE discards an event not ended by a blank line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger("skiff.proxy")

# Headers of the node's reply that mean something end to end; hop-by-hop ones (connection,
# transfer-encoding, content-length) are the proxy's own business.
_FORWARDED = ("content-type", "cache-control")


class StreamRelay:
    """An ASGI response relaying an open upstream `httpx.Response` (stream=True)."""

    def __init__(
        self,
        upstream: httpx.Response,
        *,
        stopping: asyncio.Event,
        send_timeout_s: float,
        on_close: Callable[[], None] | None = None,
        node_gone: asyncio.Event | None = None,
    ) -> None:
        self._upstream = upstream
        self._stopping = stopping
        # Set when the node leaves membership. A node cut off the network never closes its
        # side, so without this the client would wait on a silent stream forever instead of
        # reconnecting (and being re-homed).
        self._node_gone = node_gone
        self._send_timeout_s = send_timeout_s
        self._on_close = on_close
        self.relayed_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self._upstream.status_code,
                    "headers": self._headers(),
                }
            )
            pump = asyncio.create_task(self._pump(send))
            client_gone = asyncio.create_task(_disconnected(receive))
            tasks = [pump, client_gone, asyncio.create_task(self._stopping.wait())]
            if self._node_gone is not None:
                tasks.append(asyncio.create_task(self._node_gone.wait()))
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            error = pump.exception() if pump in done else None
            if error is not None:
                # OSError / TimeoutError: the client's connection failed or stopped reading.
                raise error
            if client_gone not in done:
                await self._send(send, {"type": "http.response.body", "body": b""})
        except (OSError, TimeoutError):
            pass
        finally:
            await self._upstream.aclose()
            if self._on_close is not None:
                self._on_close()

    async def _pump(self, send: Send) -> None:
        try:
            async for chunk in self._upstream.aiter_raw():
                if chunk:
                    self.relayed_bytes += len(chunk)
                    await self._send(
                        send, {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
        except httpx.TransportError as err:
            # The node went away mid-stream: end the client's response so it reconnects.
            logger.info("stream from %s ended: %s", self._upstream.url.host, type(err).__name__)

    async def _send(self, send: Send, message: Message) -> None:
        # A client that stops reading while its socket stays open would pin this relay (and
        # the node's connection) forever; give up on it after the timeout.
        async with asyncio.timeout(self._send_timeout_s):
            await send(message)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (name.encode(), self._upstream.headers[name].encode())
            for name in _FORWARDED
            if name in self._upstream.headers
        ]
        # Tell buffering intermediaries (nginx) to pass events through at once.
        headers.append((b"x-accel-buffering", b"no"))
        return headers


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def read_whole(upstream: httpx.Response, limit: int = 64 * 1024) -> bytes:
    """The body of a non-200 stream reply (an error message), at most `limit` bytes; closes
    the response."""
    body = b""
    try:
        async for chunk in upstream.aiter_raw():
            body += chunk
            if len(body) >= limit:
                break
    except httpx.TransportError:
        pass
    finally:
        await upstream.aclose()
    return body[:limit]
