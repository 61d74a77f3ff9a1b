"""StreamRelay: a node's SSE response passed through to the client, byte for byte.

Nothing is parsed, buffered or re-encoded: each read from the node's socket (proxy/node_stream.py
removes the transfer coding) is sent on as one ASGI body message, which uvicorn writes at once,
so an event reaches the client as soon as the node flushed it (heartbeats included).

Per relay there is only the request's own task, waiting in `receive()` for the client to go
away, while a ChunkWriter (broker/http/chunks.py) writes each chunk from the node socket's read
callback itself. The relay ends when

- the node ends the stream or its connection fails,
- the client goes away (the node connection is closed at once),
- `end()` is called: the node left membership (a node cut off the network never closes its
  side, so its clients would otherwise wait on a silent stream) or the proxy is stopping
  (RelayBoard does both).

Whatever ended it, the node connection is closed, and the client's response is completed
cleanly when the client is still there: an EventSource then reconnects with its Last-Event-ID,
and the proxy routes the reconnect (re-homing the stream if its node is gone). A partial event
cut off by a dying node never counts: SSE discards an event not ended by a blank line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from starlette.types import Message, Receive, Scope, Send

from broker.http.chunks import ChunkWriter
from broker.http.eager_send import send_within
from proxy.node_stream import NodeStream

logger = logging.getLogger("skiff.proxy")

# Headers of the node's reply that mean something end to end; hop-by-hop ones (connection,
# transfer-encoding, content-length) are the proxy's own business.
_FORWARDED: Final = ("content-type", "cache-control")


class StreamRelay:
    """An ASGI response relaying an open NodeStream that answered 200."""

    __slots__ = ("_on_close", "_send_timeout_s", "_stream", "extra_headers")

    def __init__(
        self,
        stream: NodeStream,
        *,
        send_timeout_s: float,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._send_timeout_s = send_timeout_s
        self._on_close = on_close
        #: Added to the node's headers (the proxy's CORS headers).
        self.extra_headers: list[tuple[bytes, bytes]] = []

    @property
    def node_id(self) -> str:
        return self._stream.node_id

    @property
    def status(self) -> int:
        return self._stream.status

    def end(self, reason: str) -> None:
        """End the relay: the client's response is completed, the node connection closed."""
        self._stream.end(reason)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        writer = ChunkWriter(stream, send, self._send_timeout_s)
        try:
            start = {"type": "http.response.start", "status": stream.status}
            await self._send(send, {**start, "headers": self._headers()})
            await writer.run(receive)
            if stream.ended not in (None, "complete"):
                logger.info("stream from %s ended: %s", stream.node_id, stream.ended)
        except (OSError, TimeoutError):
            pass  # the client's connection failed or it stopped reading
        finally:
            stream.close()
            if self._on_close is not None:
                self._on_close()

    async def _send(self, send: Send, message: Message) -> None:
        # A client that stops reading while its socket stays open would pin this relay (and
        # the node's connection) forever; give up on it after the timeout.
        await send_within(send, message, self._send_timeout_s)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        upstream = self._stream.headers
        headers = [
            (name.encode(), upstream[name].encode("latin-1"))
            for name in _FORWARDED
            if name in upstream
        ]
        # Tell buffering intermediaries (nginx) to pass events through at once.
        headers.append((b"x-accel-buffering", b"no"))
        return headers + self.extra_headers


class RelayBoard:
    """Every relay a proxy runs, by node: ended together when their node leaves membership,
    all of them when the proxy stops."""

    def __init__(self) -> None:
        self._by_node: dict[str, set[StreamRelay]] = {}
        self._stopped = False

    def __len__(self) -> int:
        return sum(len(relays) for relays in self._by_node.values())

    def add(self, relay: StreamRelay) -> Callable[[], None]:
        """Track `relay` (ended at once when the board has stopped); returns its removal."""
        if self._stopped:
            relay.end("proxy stopping")
        relays = self._by_node.setdefault(relay.node_id, set())
        relays.add(relay)

        def remove() -> None:
            relays.discard(relay)
            if not relays and self._by_node.get(relay.node_id) is relays:
                del self._by_node[relay.node_id]

        return remove

    def end_node(self, node_id: str, reason: str = "node gone") -> int:
        """End the relays from `node_id`; how many there were."""
        relays = self._by_node.pop(node_id, set())
        for relay in relays:
            relay.end(reason)
        return len(relays)

    def stop(self) -> None:
        """End every relay, and any added from now on."""
        self._stopped = True
        for node_id in list(self._by_node):
            self.end_node(node_id, "proxy stopping")
