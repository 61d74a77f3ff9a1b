"""NodeStream: one `GET /v1/streams/{id}` to a node, on a connection of its own.

A relayed SSE stream lives as long as its client, so it is not a request of the proxy's HTTP
client: held in httpx's pool, every open stream made each later request scan the pool (with
10,000 streams held, a write through the proxy took 45 ms instead of 3), and each cost several
objects and a task per read. Here a stream is an asyncio protocol on its own socket: httptools
(uvicorn's C parser) takes the response head and the chunked transfer coding off, and each read
from the socket becomes one chunk of body bytes, as the node flushed them. Nothing above the
transfer coding is looked at.

Back-pressure: past `_PAUSE_AT` chunks not yet taken (the client reads slower than the node writes),
the proxy stops reading the node's socket until the relay catches up; the node then sees a slow
reader and coalesces or drops it (broker/serving/streams/subscription.py), as it would a direct one.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

import httptools

from broker.http.chunks import ChunkSource
from proxy.errors import NodeUnavailableError

_PAUSE_AT: Final = 64
_RESUME_AT: Final = 8


class NodeStream(asyncio.Protocol, ChunkSource):
    """The response side of one stream request; see `proxy.upstream.Upstream.open_stream`."""

    # Ten thousand of these per proxy is the design point: no per-instance dict.
    __slots__ = (
        "_head",
        "_parser",
        "_parts",
        "_paused",
        "_pending",
        "_transport",
        "ended",
        "headers",
        "node_id",
        "status",
    )

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.status = 0
        #: The response headers, names lower-cased (the last of a repeated name).
        self.headers: dict[str, str] = {}
        #: Why the stream ended (None while it runs): "complete", "closed", "failed: ...".
        self.ended: str | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        # Resolved with None once the head is in, or with why it never will be.
        self._head: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        # A list, not a deque: usually empty, and an empty deque is 760 bytes.
        self._pending: list[bytes] = []
        self._parts: list[bytes] = []
        self._paused = False
        ChunkSource.__init__(self)

    # -- the consumer's side -------------------------------------------------------------------
    async def wait_head(self, timeout_s: float) -> None:
        """Until the status line and headers arrived. Raises NodeUnavailableError."""
        try:
            async with asyncio.timeout(timeout_s):
                failure = await self._head
        except TimeoutError as err:
            self.close()
            raise NodeUnavailableError(self.node_id, "no response head in time") from err
        if failure is not None:
            self.close()
            raise NodeUnavailableError(self.node_id, failure)

    def take(self) -> bytes | None:
        """The next body bytes received, or None when none are waiting."""
        if not self._pending:
            return None
        chunk = self._pending.pop(0)
        if self._paused and len(self._pending) <= _RESUME_AT and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return chunk

    @property
    def finished(self) -> bool:
        return self.ended is not None

    async def read_whole(self, limit: int = 64 * 1024, timeout_s: float = 5.0) -> bytes:
        """The whole body (an error reply), at most `limit` bytes; closes the stream."""
        body = b""
        try:
            async with asyncio.timeout(timeout_s):
                while len(body) < limit and (chunk := await self.next_chunk()) is not None:
                    body += chunk
        except TimeoutError:
            pass
        finally:
            self.close()
        return body[:limit]

    def end(self, reason: str) -> None:
        """Stop the stream: what was received and not taken is dropped, the socket closed."""
        self._pending.clear()
        self._finish(reason)
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.ended is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self.end(f"failed: malformed response ({err})")
            self._fail_head("malformed response")
            return
        if self._parts:
            # One chunk per socket read: an event split across reads goes on in two parts,
            # several events in one read go on together.
            self._pending.append(self._parts[0] if len(self._parts) == 1 else b"".join(self._parts))
            self._parts.clear()
            if len(self._pending) >= _PAUSE_AT and not self._paused and self._transport:
                self._paused = True
                self._transport.pause_reading()
            self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost ends the stream

    def connection_lost(self, exc: Exception | None) -> None:
        reason = "closed" if exc is None else f"failed: {type(exc).__name__}"
        self._fail_head(reason)
        self._finish(reason)

    # -- httptools callbacks -------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._parts.append(body)

    def on_message_complete(self) -> None:
        self._finish("complete")
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _finish(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self._wake()

    def _fail_head(self, reason: str) -> None:
        if not self._head.done():
            self._head.set_result(reason)
