"""Thousands of SSE subscribers in one client process, cheap enough not to hide the server.

Each subscriber is a bare asyncio protocol: it sends its GET, then only scans incoming bytes for
the marker the pool is waiting for (a byte string unique to one write, e.g. `"seq":17}`). No
HTTP or SSE parsing per event, so a write that reaches 10,000 subscribers costs the client about
10,000 `data_received` callbacks and substring searches; the figures still include that cost,
for skiff and Skip alike, since the client shares the machine's two cores with the servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

_TAIL = 256
RETRIES = 3


class _Subscriber(asyncio.Protocol):
    def __init__(self, pool: SubscriberPool, request: bytes) -> None:
        self.pool = pool
        self.request = request
        self.tail = b""
        self.ready = False
        self.seen: bytes | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any loop's transport (uvloop's do not derive from asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        pool = self.pool
        pool.bytes_received += len(data)
        pool.updates += data.count(b"event: update")
        window = self.tail + data
        if not self.ready:
            if b"event: init" in window:
                self.ready = True
                pool._ready(self)
            elif b" 200 " not in window[:16] and window.startswith(b"HTTP/1.1 "):
                pool._refused(self, window)
                return
        marker = pool.marker
        if marker is not None and self.seen is not marker and marker in window:
            self.seen = marker
            pool._arrived(now)
        self.tail = window[-_TAIL:]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.pool.lost += 1


class SubscriberPool:
    """Open SSE connections to `host:port`; `expect(marker)` times one write's arrival at all."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.subscribers: list[_Subscriber] = []
        self.marker: bytes | None = None
        self.bytes_received = 0
        self.updates = 0
        self.lost = 0
        self.refusals = 0
        self._tries: dict[bytes, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending_ready = 0
        self._ready_event = asyncio.Event()
        self._arrivals: list[float] = []
        self._want = 0
        self._all_arrived = asyncio.Event()
        self._error: str | None = None

    def __len__(self) -> int:
        return len(self.subscribers)

    def _ready(self, sub: _Subscriber) -> None:
        self._pending_ready -= 1
        if self._pending_ready <= 0:
            self._ready_event.set()

    def _refused(self, sub: _Subscriber, head: bytes) -> None:
        """A refused stream (a proxy's 503 while a node settles) is retried like an EventSource
        would, half a second later, at most `RETRIES` times per subscriber; `refusals` counts
        them for the report."""
        self.refusals += 1
        if sub.transport is not None:
            sub.transport.close()
        if sub in self.subscribers:
            self.subscribers.remove(sub)
        tries = self._tries.get(sub.request, 0) + 1
        self._tries[sub.request] = tries
        if tries > RETRIES:
            self._error = head.decode(errors="replace")[:400]
            self._ready_event.set()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._reconnect(sub.request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconnect(self, request: bytes) -> None:
        await asyncio.sleep(0.5)
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _Subscriber(self, request), self.host, self.port
        )
        self.subscribers.append(protocol)

    def _arrived(self, now: float) -> None:
        self._arrivals.append(now)
        if len(self._arrivals) >= self._want:
            self._all_arrived.set()

    async def add(self, paths: Sequence[str], batch: int = 250, wait_s: float = 120.0) -> None:
        """Connect one subscriber per path and wait until each has received its init."""
        loop = asyncio.get_running_loop()
        self._ready_event.clear()
        self._pending_ready = len(paths)
        host = f"{self.host}:{self.port}"
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]

            async def connect(path: str) -> None:
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
                _, protocol = await loop.create_connection(
                    lambda: _Subscriber(self, request), self.host, self.port
                )
                self.subscribers.append(protocol)

            await asyncio.gather(*(connect(p) for p in chunk))
        if paths:
            await asyncio.wait_for(self._ready_event.wait(), wait_s)
        if self._error:
            raise RuntimeError(f"a subscriber was refused: {self._error}")

    def expect(self, marker: bytes, want: int | None = None) -> None:
        """Arm the pool for the next write, whose events carry `marker`; `arrivals()` returns
        once `want` subscribers (default: all) have seen it."""
        self._arrivals = []
        self._want = len(self.subscribers) if want is None else want
        self._all_arrived.clear()
        self.marker = marker

    async def arrivals(self, wait_s: float = 60.0) -> list[float]:
        """perf_counter times at which each subscriber saw the armed marker."""
        await asyncio.wait_for(self._all_arrived.wait(), wait_s)
        return self._arrivals

    def close(self) -> None:
        for sub in self.subscribers:
            if sub.transport is not None:
                sub.transport.close()
        self.subscribers = []
