"""Upstream: the proxy's HTTP client to registered nodes.

Every URL it requests is built from a node's own record (`NodeRecord.url`) and a path the proxy
composes with each client-supplied segment percent-encoded: nothing a client sends can point the
proxy at another host. Requests carry the proxy's control token (when one is configured) in
place of whatever Authorization the client sent: the proxy checked the client's already, and
nodes require the token for proxy-chosen stream ids. A user's identity token, verified here, is
passed on as `X-Skiff-User-Token` (however the client sent it: a header, a cookie, the stream
URL's query), so each node verifies it again and applies the user's rules; the query of a
stream URL itself is never forwarded.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from broker.http.access import USER_TOKEN_HEADER
from broker.http.paths import AFTER_VERSION_HEADER, STREAM_ID_HEADER
from broker.json_bytes import JsonDecodeError, loads
from broker.store.node_record import NodeRecord
from proxy.cluster.control_client import ControlClient, Reply, header_safe
from proxy.errors import NodeUnavailableError
from proxy.node_stream import NodeStream

__all__ = ["Reply", "Upstream", "segment"]


def segment(value: str) -> str:
    """A client-supplied path segment, encoded so it stays one segment."""
    return quote(value, safe="")


class Upstream:
    def __init__(
        self,
        *,
        token: str | None,
        connect_timeout_s: float,
        request_timeout_s: float,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        #: Called with (method, seconds) for every completed control request.
        self._observe = observe
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._ssl: ssl.SSLContext | None = None  # made on the first https node
        # Control requests only: relayed streams have connections of their own.
        self._control = ControlClient(
            connect_timeout_s=connect_timeout_s, request_timeout_s=request_timeout_s
        )
        #: The newest version a write relayed by this proxy was acknowledged at.
        self.written_version = 0

    async def aclose(self) -> None:
        await self._control.aclose()

    async def request(
        self,
        node: NodeRecord,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        user_token: str | None = None,
    ) -> Reply:
        """Send one request and read the whole reply. Raises NodeUnavailableError when the node
        cannot be reached or fails mid-request; any HTTP status is returned as a Reply."""
        if node.url is None:
            raise NodeUnavailableError(node.node_id, "it advertises no URL")
        started = time.perf_counter()
        sent = self._headers(headers)
        if user_token is not None:
            sent[USER_TOKEN_HEADER] = user_token
        reply = await self._control.request(
            node.node_id, node.url.rstrip("/"), method, path, sent, content
        )
        if self._observe is not None:
            self._observe(method, time.perf_counter() - started)
        return reply

    def acknowledged(self, reply: Reply) -> None:
        """A write's reply relayed to its client: reads sent after it wait for its version."""
        if reply.status != 200:
            return
        try:
            version = loads(reply.body).get("version")
        except (JsonDecodeError, AttributeError):
            return
        if type(version) is int and version > self.written_version:
            self.written_version = version

    def read_headers(self) -> dict[str, str]:
        """The headers of a read (snapshot, lookup, stream creation): JSON, and the version a
        node must have applied before it answers (see AFTER_VERSION_HEADER)."""
        headers = {"Content-Type": "application/json"}
        if self.written_version:
            headers[AFTER_VERSION_HEADER] = str(self.written_version)
        return headers

    async def create_stream(
        self,
        node: NodeRecord,
        resource: str,
        params: bytes,
        stream_id: str,
        user_token: str | None = None,
    ) -> Reply:
        """`POST /v1/streams/{resource}` asking the node to use `stream_id` (idempotent: the
        node answers 201 again when it holds that id on the same instance already)."""
        return await self.request(
            node,
            "POST",
            f"/v1/streams/{segment(resource)}",
            content=params,
            headers={**self.read_headers(), STREAM_ID_HEADER: stream_id},
            user_token=user_token,
        )

    async def open_stream(
        self,
        node: NodeRecord,
        stream_id: str,
        last_event_id: str | None,
        user_token: str | None = None,
    ) -> NodeStream:
        """Start `GET /v1/streams/{id}` on a connection of its own (proxy/node_stream.py) and
        wait for the reply's head; the caller relays or closes it (any status). Raises
        NodeUnavailableError: no byte of the stream was relayed yet, so another node may be
        tried."""
        target = urlsplit(_url(node, f"/v1/streams/{segment(stream_id)}"))
        if target.scheme not in ("http", "https") or target.hostname is None:
            raise NodeUnavailableError(node.node_id, f"unusable URL scheme {target.scheme!r}")
        port = target.port or (443 if target.scheme == "https" else 80)
        lines = [
            f"GET {target.path} HTTP/1.1",
            f"Host: {target.netloc}",
            "Accept: text/event-stream",
            "Cache-Control: no-cache",
            "Connection: close",
        ]
        if last_event_id is not None and header_safe(last_event_id):
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{name}: {value}" for name, value in self._auth.items()]
        if user_token is not None and header_safe(user_token):
            lines.append(f"{USER_TOKEN_HEADER}: {user_token}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        loop = asyncio.get_running_loop()
        stream = NodeStream(node.node_id)
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                transport, _ = await loop.create_connection(
                    lambda: stream,
                    target.hostname,
                    port,
                    ssl=self._tls() if target.scheme == "https" else None,
                )
        except (OSError, TimeoutError) as err:
            raise NodeUnavailableError(node.node_id, f"connect: {type(err).__name__}") from err
        transport.write(request)
        await stream.wait_head(self._request_timeout_s)
        return stream

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        return {**(headers or {}), **self._auth}


def _url(node: NodeRecord, path: str) -> str:
    if node.url is None:
        raise NodeUnavailableError(node.node_id, "it advertises no URL")
    return node.url.rstrip("/") + path
