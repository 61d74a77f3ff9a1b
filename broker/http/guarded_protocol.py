"""Connections that never finish a request: a deadline on every request head, a cap per address.

uvicorn closes a keep-alive connection that stays silent between requests, but once a request
has begun nothing bounds how long its head may take: a client that sends a request line and
then a header line every few seconds holds a descriptor, a parser and a protocol object for as
long as it likes, and 10,000 of them hold 10,000 descriptors. So:

- **Header timeout.** A request's head must be complete within `header_timeout_s` of the moment
  the server is ready for it: the connection's opening, or the end of the previous response on
  a keep-alive connection (Go's `ReadHeaderTimeout`, nginx's `client_header_timeout`). Trickling
  bytes does not extend it. Past it the connection is closed, with a 408 when part of a head
  had arrived (a keep-alive connection with nothing begun is closed without a word: a 408
  there could be read as the answer to a request the client is sending at that moment). The
  deadline stops once the head is complete: an SSE response that then lasts for hours is never
  cut by it.
- **Connections per address.** At most `max_per_address` connections from one client address
  (an IPv6 client counts by its /64, broker/http/client_address.py) are open at once; one more
  is answered a fixed 429 and closed before anything is parsed, so a refusal costs one write.
  0 turns the cap off. Peers the `exempt` predicate names (trusted load balancers, which carry
  many clients) are not capped.

A `ConnectionGuard` holds the counts of one server; each admitted connection holds an
`Admission`, which a protocol passes on when it hands its connection to another protocol (a
node's connection becomes uvicorn's, serving/connection.py). `GuardedHttpToolsProtocol` is
uvicorn's httptools protocol with the guard applied, for uvicorn's `http=` option.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from broker.http.client_address import address_key

Exempt = Callable[[str], bool]

_TOO_MANY: Final = b'{"error":"too many connections from this address"}'
_TIMED_OUT: Final = b'{"error":"request head not received in time"}'


def _response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n" + extra
        + b"connection: close\r\n\r\n" + body
    )  # fmt: skip


_REFUSED_REPLY: Final = _response(b"429 Too Many Requests", _TOO_MANY, b"retry-after: 1\r\n")
_TIMEOUT_REPLY: Final = _response(b"408 Request Timeout", _TIMED_OUT)


def _never(host: str) -> bool:
    return False


class ConnectionGuard:
    """The header deadline and the per-address counts of one server's connections."""

    __slots__ = ("_counts", "exempt", "header_timeout_s", "max_per_address", "refused", "timed_out")

    def __init__(
        self, header_timeout_s: float, max_per_address: int = 0, exempt: Exempt = _never
    ) -> None:
        self.header_timeout_s = header_timeout_s
        self.max_per_address = max_per_address
        self.exempt = exempt
        self._counts: dict[str, int] = {}
        #: Connections refused by the cap, and closed by the header deadline, since start.
        self.refused = 0
        self.timed_out = 0

    def open_from(self, host: str) -> int:
        """Connections counted against `host`'s address now."""
        return self._counts.get(address_key(host), 0)

    def admit(self, transport: asyncio.BaseTransport) -> Admission | None:
        """An Admission for a new connection (its head deadline running), or None when its
        address is at the cap: the connection has then been answered 429 and closed."""
        key = None
        if self.max_per_address:
            peer = transport.get_extra_info("peername")
            host = peer[0] if isinstance(peer, tuple) and peer else None
            if isinstance(host, str) and not self.exempt(host):
                key = address_key(host)
                count = self._counts.get(key, 0)
                if count >= self.max_per_address:
                    self.refused += 1
                    _answer(transport, _REFUSED_REPLY)
                    return None
                self._counts[key] = count + 1
        admission = Admission(self, transport, key)
        admission.arm()
        return admission

    def _release(self, key: str) -> None:
        count = self._counts.get(key, 0) - 1
        if count > 0:
            self._counts[key] = count
        else:
            self._counts.pop(key, None)


class Admission:
    """One admitted connection: its slot in the per-address count and its head deadline.

    The deadline is a time, moved by `arm` and cleared by `disarm`, watched by at most one
    timer per connection: a keep-alive connection's requests do not each schedule and cancel
    a timer. A deadline only ever moves later (the timeout is the guard's, the clock monotonic),
    so the timer fires at the deadline or before it: before (it was moved since), it is set
    again for the deadline; when no deadline is running, it lapses."""

    __slots__ = ("_deadline_at", "_guard", "_key", "_timer", "_transport", "begun")

    def __init__(self, guard: ConnectionGuard, transport: asyncio.BaseTransport, key: str | None):
        self._guard = guard
        self._transport = transport
        self._key = key
        #: The loop time by which the awaited head must be complete; None: not timing.
        self._deadline_at: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Bytes of the awaited head have arrived (set by the protocol).
        self.begun = False

    def arm(self) -> None:
        """Start the deadline of the next request head (from now)."""
        self.begun = False
        loop = asyncio.get_running_loop()
        self._deadline_at = loop.time() + self._guard.header_timeout_s
        if self._timer is None:
            self._timer = loop.call_at(self._deadline_at, self._check)

    def disarm(self) -> None:
        """The head is complete: whatever follows (a body, an SSE stream) is not timed here."""
        self._deadline_at = None

    def release(self) -> None:
        """The connection is gone: its slot is free."""
        self._deadline_at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        key, self._key = self._key, None
        if key is not None:
            self._guard._release(key)

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline_at
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check)
            return
        self._deadline_at = None
        self._guard.timed_out += 1
        _answer(self._transport, _TIMEOUT_REPLY if self.begun else b"")


def _answer(transport: asyncio.BaseTransport, reply: bytes) -> None:
    if transport.is_closing():
        return
    if reply and isinstance(transport, asyncio.WriteTransport):
        transport.write(reply)
    transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a ConnectionGuard: `functools.partial(
    GuardedHttpToolsProtocol, guard=guard)` as uvicorn's `http` class. `admission`: the one a
    connection already holds when another protocol hands it over."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._admission = admission
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if self._admission is None:
            self._admission = self._guard.admit(transport)
            if self._admission is None:
                self._refused = True  # answered and closing; uvicorn never sees it
                return
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._admission is not None:
            self._admission.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        if self._admission is not None:
            self._admission.begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self._admission is not None:
            self._admission.disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # A pipelined request waiting here has its head complete already: nothing to time.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and self._admission is not None and not self.transport.is_closing():
            self._admission.arm()
