"""NodeConnection: where every connection to a node starts; a stream read is served right here.

An idle SSE stream is most of what a node holds, so what one costs is the node's capacity. Served
through uvicorn and ASGI, each stream kept a protocol object with its parser and two asyncio
Events, a request cycle, the ASGI scope, a task and the chain of coroutine frames that awaits
the client's disconnect: about 8 KB of a live instance's 15 (docs/benchmarks.md, issue 13).

So a connection whose first request is `GET /v1/streams/{id}` — what EventSource and the proxy
send, one connection per stream — is answered by this protocol itself: the head is parsed (then
the parser is dropped), the reader subscribed, and from then on each chunk is written to the
transport from the code that produced it (Hub.publish), with transport flow control standing
for the ASGI send: a client that stops reading for `send_timeout_s` is dropped. No task, no
scope, no frames.

Everything else — another method or path, an error to answer (unknown stream, wrong Accept,
draining), a resume that must wait for this node to catch up (`Last-Event-ID`), an open tick on
a leader, anything unusual in the head — is handed to uvicorn's own protocol, bytes replayed,
and goes through the ASGI app as before; so are the later requests of a keep-alive connection.

With identity tokens on, the token (header, cookie or `?access_token=`) is verified here too and
the stream's owner checked; anything but a plain yes — a token to refuse, a JWKS key to fetch,
a stream that is not the caller's — is handed over, and the ASGI path gives the answer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from broker.errors import BrokerError
from broker.http.accept import accepts_event_stream
from broker.http.access import USER_TOKEN_HEADER, Access
from broker.http.guarded_protocol import Admission, ConnectionGuard, GuardedHttpToolsProtocol
from broker.http.paths import stream_read_id
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.serving.stream_response import HEADERS
from broker.serving.streams.subscription import Subscription
from graph import GraphError

logger = logging.getLogger("skiff.broker")
access_logger = logging.getLogger("uvicorn.access")

_STREAM_GET: Final = b"GET /v1/streams/"
_END_OF_HEAD: Final = b"\r\n\r\n"
# A stream read's head is a few hundred bytes; anything larger is left to uvicorn's limits.
_MAX_HEAD: Final = 16 * 1024
# Headers that make a GET something this protocol does not serve (a body, an upgrade, ...).
_HAND_OVER_IF: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"last-event-id"}
)
_LAST_CHUNK: Final = b"0\r\n\r\n"
# The headers that may carry a caller's credentials (broker/http/access.py).
_CREDENTIALS: Final = (b"authorization", b"cookie", USER_TOKEN_HEADER.encode())


class _Head:
    """What httptools reports of one request head (a parser's callbacks)."""

    __slots__ = ("complete", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.complete = True


class NodeConnection(asyncio.Protocol):
    """One connection of a node (uvicorn's `http` protocol class; see serving/server.py)."""

    __slots__ = (
        "_access",
        "_admission",
        "_app_state",
        "_buffer",
        "_config",
        "_guard",
        "_hub",
        "_loop",
        "_paused",
        "_reader",
        "_server_state",
        "_settings",
        "_stuck",
        "_transport",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        hub: Hub,
        settings: ServeConfig,
        guard: ConnectionGuard,
        access: Access | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        self._hub = hub
        self._settings = settings
        self._access = access
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._reader: Subscription | None = None
        self._paused = False
        self._stuck: asyncio.TimerHandle | None = None
        self._guard = guard
        #: The connection's slot and head deadline (broker/http/guarded_protocol.py); None once
        #: handed over with the connection, or when the guard refused it.
        self._admission: Admission | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._admission = self._guard.admit(transport)
        if self._admission is not None:
            self._transport = transport  # type: ignore[assignment]
        # else: refused (answered 429 and closing); with no transport it reads nothing

    def data_received(self, data: bytes) -> None:
        if self._reader is not None or self._transport is None:
            return  # a stream's client has nothing more to say (pipelined bytes are dropped)
        if self._admission is not None:
            self._admission.begun = True
        buffer = self._buffer = self._buffer + data
        if len(buffer) < len(_STREAM_GET):
            if not _STREAM_GET.startswith(buffer):
                self._hand_over()
            return
        if not buffer.startswith(_STREAM_GET):
            self._hand_over()
            return
        end = buffer.find(_END_OF_HEAD)
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                self._hand_over()
            return
        reader = self._subscribe(buffer[: end + len(_END_OF_HEAD)])
        if reader is None:
            self._hand_over()
            return
        self._buffer = b""
        self._serve(reader)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost cleans up

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        if self._admission is not None:
            self._admission.release()
            self._admission = None
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.listen(None)
            self._hub.unsubscribe(reader)

    def pause_writing(self) -> None:
        # The client stopped reading and the socket's buffer filled: the subscription keeps
        # (and coalesces) what comes meanwhile; a client still stuck after the send timeout is
        # dropped, as on the ASGI path.
        self._paused = True
        if self._stuck is None:
            self._stuck = self._loop.call_later(self._settings.send_timeout_s, self._drop_stuck)

    def resume_writing(self) -> None:
        self._paused = False
        if self._stuck is not None:
            self._stuck.cancel()
            self._stuck = None
        self._pump()

    def shutdown(self) -> None:
        """uvicorn's shutdown asks every connection to end (the hub has ended the readers)."""
        if self._transport is not None:
            self._transport.close()

    # -- serving a stream ----------------------------------------------------------------------
    def _subscribe(self, head: bytes) -> Subscription | None:
        """The reader of the stream `head` asks for, or None when this is not a request this
        protocol answers (uvicorn and the ASGI app will, the same way as always)."""
        parsed = _Head()
        parser = httptools.HttpRequestParser(parsed)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError:
            return None
        if not parsed.complete or parser.get_http_version() != "1.1":
            return None
        headers = parsed.headers
        if not _HAND_OVER_IF.isdisjoint(headers):
            return None
        if not accepts_event_stream(headers.get(b"accept", b"").decode("latin-1")):
            return None
        try:
            url = httptools.parse_url(parsed.url)
            stream_id = stream_read_id(unquote(url.path.decode("ascii")))
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        hub = self._hub
        if stream_id is None or hub.engine.tick is not None:
            # An open tick is a leader waiting on Redis: the ASGI path waits for it to settle.
            return None
        until = None
        access = self._access
        try:
            if access is not None and access.enabled:
                credentials = {
                    name.decode(): headers[name].decode("latin-1")
                    for name in _CREDENTIALS
                    if name in headers
                }
                query = url.query.decode("latin-1") if url.query else ""
                caller = access.caller_now(credentials, query)
                access.require_stream(caller, stream_id, hub.owner_of(stream_id))
                until = access.valid_until(caller)
            return hub.subscribe(stream_id, until=until)
        except (BrokerError, GraphError):
            return None

    def _serve(self, reader: Subscription) -> None:
        transport = self._transport
        assert transport is not None
        if self._admission is not None:
            self._admission.disarm()  # the head is complete: the stream may last for hours
        self._reader = reader
        self._server_state.connections.add(self)  # type: ignore[arg-type]
        head = [b"HTTP/1.1 200 OK\r\n"]
        for name, value in (*self._server_state.default_headers, *HEADERS):
            head += (name, b": ", value, b"\r\n")
        head.append(b"transfer-encoding: chunked\r\n\r\n")
        transport.write(b"".join(head))
        if self._config.access_log and access_logger.hasHandlers():
            client = get_remote_addr(transport)
            where = f"{client[0]}:{client[1]}" if client else "-"
            access_logger.info('%s - "GET /v1/streams/%s HTTP/1.1" 200', where, reader.stream_id)
        reader.listen(self._pump)
        self._pump()

    def _pump(self) -> None:
        reader, transport = self._reader, self._transport
        if reader is None or transport is None or self._paused:
            return
        while True:
            chunk = reader.take()
            if chunk is None:
                if reader.finished:
                    self._end()
                return
            transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if self._paused:
                return

    def _end(self) -> None:
        # Called from inside whatever closed the reader (a Hub method): the hub hears of the
        # end from connection_lost, once the transport has closed, not re-entrantly from here.
        if self._reader is not None:
            self._reader.listen(None)
        if self._transport is not None:
            self._transport.write(_LAST_CHUNK)
            self._transport.close()

    def _drop_stuck(self) -> None:
        self._stuck = None
        if self._reader is not None:
            logger.info("closing stream %s: its client stopped reading", self._reader.stream_id)
        if self._transport is not None:
            self._transport.abort()

    # -- everything else -----------------------------------------------------------------------
    def _hand_over(self) -> None:
        """Give this connection to uvicorn's protocol, replaying what it has received."""
        transport = self._transport
        assert transport is not None
        # The admission moves with the connection: its head deadline keeps running.
        admission, self._admission = self._admission, None
        protocol = GuardedHttpToolsProtocol(
            config=self._config,
            server_state=self._server_state,
            app_state=self._app_state,
            _loop=self._loop,
            guard=self._guard,
            admission=admission,
        )
        buffered, self._buffer = self._buffer, b""
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(buffered)
