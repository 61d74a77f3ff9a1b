"""ControlClient: the proxy's keep-alive HTTP/1.1 client for control requests to nodes.

Every write the proxy forwards, every stream it creates and every snapshot it reads is one of
these requests, so their cost is on the critical path of a write reaching its readers. A
general-purpose client (httpx, which the proxy used) spent about 0.6 ms of Python per request
building, sending and parsing it (docs/benchmarks.md, issue 13); this one keeps a few idle
connections per node and does the rest with httptools, uvicorn's C parser.

Outcomes, as the write forwarder needs them (proxy/writes.py): a request that could not be sent
(no connection could be made, or none was free in time) did not reach the node; one that failed
after it was written may have (`NodeUnavailableError.reached`). An idle connection is not reused
after `idle_s` (shorter than a node's keep-alive timeout, 5 s in uvicorn), so a request is not
sent on a connection the node is closing.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

from broker.http.errors import HttpError
from proxy.errors import NodeUnavailableError

#: Concurrent requests to one node (more wait for a free connection, up to the connect timeout).
MAX_PER_NODE: Final = 64
IDLE_S: Final = 4.0
MAX_REPLY_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A node's complete answer to a control request."""

    status: int
    body: bytes
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int
    netloc: str
    tls: bool


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    __slots__ = (
        "_body",
        "_content_type",
        "_parser",
        "_reply",
        "_size",
        "_transport",
        "closed",
        "idle_at",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._reply: asyncio.Future[tuple[Reply, bool]] | None = None
        self._content_type: str | None = None
        self._body: list[bytes] = []
        self._size = 0
        self.closed = False
        self.idle_at = 0.0

    def exchange(self, request: bytes) -> asyncio.Future[tuple[Reply, bool]]:
        """Send `request`; the future gives the reply and whether the connection may be
        reused (or a ConnectionError)."""
        assert self._transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._content_type = None
        self._body = []
        self._size = 0
        self._reply = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        return self._reply

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(f"malformed reply ({err})")
            self.close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("connection closed" if exc is None else f"{type(exc).__name__}: {exc}")

    # -- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self._content_type = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._size += len(body)
        if self._size > MAX_REPLY_BYTES:
            self._fail("reply too large")
            self.close()

    def on_message_complete(self) -> None:
        reply = self._reply
        if reply is not None and not reply.done():
            answer = Reply(self._parser.get_status_code(), b"".join(self._body), self._content_type)
            reply.set_result((answer, self._parser.should_keep_alive()))

    def _fail(self, reason: str) -> None:
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_exception(ConnectionError(reason))


class ControlClient:
    def __init__(self, *, connect_timeout_s: float, request_timeout_s: float) -> None:
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._ssl: ssl.SSLContext | None = None  # made on the first https node
        self._targets: dict[str, _Target] = {}
        self._idle: dict[_Target, list[_Connection]] = {}
        self._slots: dict[_Target, asyncio.Semaphore] = {}

    async def request(
        self,
        node_id: str,
        base_url: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> Reply:
        """One request to the node at `base_url`; NodeUnavailableError when it could not be
        sent (`reached` False) or failed once sent (`reached` True)."""
        target = self._target(node_id, base_url)
        request = _encode(target, method, path, headers, body or b"")
        slots = self._slots.setdefault(target, asyncio.Semaphore(MAX_PER_NODE))
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await slots.acquire()
        except TimeoutError as err:
            raise NodeUnavailableError(node_id, "no free connection in time") from err
        try:
            conn = await self._connection(node_id, target)
            try:
                async with asyncio.timeout(self._request_timeout_s):
                    reply, reusable = await conn.exchange(request)
            except (ConnectionError, TimeoutError) as err:
                conn.close()
                reason = "no reply in time" if isinstance(err, TimeoutError) else str(err)
                raise NodeUnavailableError(node_id, reason, reached=True) from err
            if reusable and not conn.closed:
                conn.idle_at = asyncio.get_running_loop().time()
                self._idle.setdefault(target, []).append(conn)
            else:
                conn.close()
            return reply
        finally:
            slots.release()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    async def _connection(self, node_id: str, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(target)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_at < IDLE_S:
                return conn
            conn.close()
        conn = _Connection()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await loop.create_connection(
                    lambda: conn, target.host, target.port, ssl=self._tls() if target.tls else None
                )
        except (OSError, TimeoutError) as err:
            raise NodeUnavailableError(node_id, f"connect: {type(err).__name__}") from err
        return conn

    def _target(self, node_id: str, base_url: str) -> _Target:
        target = self._targets.get(base_url)
        if target is None:
            url = urlsplit(base_url)
            if url.scheme not in ("http", "https") or url.hostname is None:
                raise NodeUnavailableError(node_id, f"unusable URL scheme {url.scheme!r}")
            tls = url.scheme == "https"
            port = url.port or (443 if tls else 80)
            target = self._targets[base_url] = _Target(url.hostname, port, url.netloc, tls)
        return target

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


def header_safe(value: str) -> bool:
    """Whether a header value can be copied into a request (no line breaks, no controls; at
    most 8 KiB, the longest identity token accepted)."""
    return len(value) <= 8 * 1024 and value.isascii() and value.isprintable()


def _encode(
    target: _Target, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.netloc}"]
    for name, value in headers.items():
        if not header_safe(value):
            raise HttpError(400, f"malformed {name} header")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
