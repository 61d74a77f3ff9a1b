"""GuardedHttpToolsProtocol under uvicorn, on real sockets: heads that never finish are closed
after the header timeout, complete requests and long responses are untouched, and one address
gets no more than its share of connections."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from broker.http.client_address import TrustedForwarders
from broker.http.guarded_protocol import ConnectionGuard, GuardedHttpToolsProtocol

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.4


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":
        # A long response, as an SSE stream is: it outlives the header timeout many times.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(8):
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await asyncio.sleep(TIMEOUT / 2)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok:" + body})


@asynccontextmanager
async def serving(guard: ConnectionGuard) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    protocol: Any = functools.partial(GuardedHttpToolsProtocol, guard=guard)
    server = uvicorn.Server(
        uvicorn.Config(app, http=protocol, lifespan="off", log_config=None, proxy_headers=False)
    )
    task = asyncio.create_task(server.serve([sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn has a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def connect(port: int, source: str = "127.0.0.1") -> tuple[Any, Any]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def read_all(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), within)


async def closed_after(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float]:
    data = await read_all(reader)
    return data, time.monotonic() - started


async def test_a_head_that_never_completes_gets_408_and_is_closed_on_time() -> None:
    guard = ConnectionGuard(TIMEOUT)
    async with serving(guard) as port:
        reader, writer = await connect(port)
        started = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            # A header line every fifth of the timeout: bytes keep coming, the deadline holds.
            while True:
                await asyncio.sleep(TIMEOUT / 5)
                writer.write(b"X-Slow: 1\r\n")

        trickling = asyncio.create_task(trickle())
        try:
            data, elapsed = await closed_after(reader, started)
        finally:
            trickling.cancel()
            writer.close()
        assert data.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in data
        assert data.endswith(b'{"error":"request head not received in time"}')
        assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 1.0
        assert guard.timed_out == 1


async def test_a_silent_connection_is_closed_without_a_word() -> None:
    # No head begun: a 408 could be taken for the answer to a request crossing it on the wire.
    async with serving(ConnectionGuard(TIMEOUT)) as port:
        reader, writer = await connect(port)
        data, elapsed = await closed_after(reader, time.monotonic())
        writer.close()
        assert data == b""
        assert elapsed < TIMEOUT + 1.0


async def test_complete_requests_and_their_bodies_are_not_timed() -> None:
    async with serving(ConnectionGuard(TIMEOUT)) as port:
        reader, writer = await connect(port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        # The head is in: a body slower than the header timeout is not cut by it.
        await asyncio.sleep(TIMEOUT * 1.5)
        writer.write(b"cd")
        response = await asyncio.wait_for(reader.readuntil(b"ok:abcd"), 5)
        assert response.startswith(b"HTTP/1.1 200 ")
        writer.close()


async def test_each_keep_alive_request_has_its_own_deadline() -> None:
    async with serving(ConnectionGuard(TIMEOUT)) as port:
        reader, writer = await connect(port)
        for _ in range(3):
            await asyncio.sleep(TIMEOUT * 0.6)  # 3 requests take longer than one timeout
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), 5)
            assert response.startswith(b"HTTP/1.1 200 ")
        # A next head begun and never finished: timed from the end of the previous response.
        writer.write(b"GET / HTTP/1.1\r\n")
        data = await read_all(reader)
        writer.close()
        assert data.startswith(b"HTTP/1.1 408 ")


class _Transport(asyncio.Transport):
    """A transport that records being closed (and what was written before)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_a_moved_deadline_holds_with_one_timer_per_connection() -> None:
    # Each keep-alive request moves the deadline; the one timer that watches it, firing at the
    # old one, waits on for the new one, and lapses when no head is awaited.
    loop = asyncio.get_running_loop()
    scheduled: list[float] = []
    real_call_at = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None).__class__.__name__ == "Admission":
            scheduled.append(when)
        return real_call_at(when, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign,assignment]
    try:
        transport = _Transport()
        admission = ConnectionGuard(TIMEOUT).admit(transport)
        assert admission is not None
        for _ in range(3):
            await asyncio.sleep(TIMEOUT * 0.6)
            admission.disarm()  # a head complete, its response sent: the next one awaited
            admission.arm()
        assert not transport.closed
        assert len(scheduled) <= 3  # not one per request (and the first, at least once, moved)
        admission.begun = True
        await until(lambda: transport.closed, within=TIMEOUT * 3)
        assert transport.written.startswith(b"HTTP/1.1 408 ")
        admission.release()

        quiet = _Transport()
        admission = ConnectionGuard(TIMEOUT).admit(quiet)
        assert admission is not None
        admission.disarm()  # a head complete, a long response: the timer lapses
        await asyncio.sleep(TIMEOUT * 1.5)
        assert not quiet.closed
        admission.release()
    finally:
        del loop.call_at


async def test_a_long_response_is_never_cut() -> None:
    async with serving(ConnectionGuard(TIMEOUT)) as port:
        reader, writer = await connect(port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        data = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10)
        writer.close()
        assert data.startswith(b"HTTP/1.1 200 ")
        assert data.count(b"tick") == 8
        assert time.monotonic() - started > TIMEOUT * 3


async def test_connections_per_address_are_capped_and_freed() -> None:
    guard = ConnectionGuard(10.0, max_per_address=3)
    async with serving(guard) as port:
        held = [await connect(port) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert guard.open_from("127.0.0.1") == 3
        reader, writer = await connect(port)
        refused = await read_all(reader)
        writer.close()
        assert refused.startswith(b"HTTP/1.1 429 ")
        assert b"retry-after: 1" in refused
        assert guard.refused == 1
        # Another address has its own count.
        other_reader, other = await connect(port, source="127.0.0.2")
        other.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"ok:" in await asyncio.wait_for(other_reader.readuntil(b"ok:"), 5)
        other.close()
        # One closes: its slot is free again.
        held[0][1].close()
        await until(lambda: guard.open_from("127.0.0.1") == 2)
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"ok:" in await asyncio.wait_for(reader.readuntil(b"ok:"), 5)
        writer.close()
        for _, w in held[1:]:
            w.close()
        await until(lambda: guard.open_from("127.0.0.1") == 0)


async def test_trusted_forwarders_are_not_capped() -> None:
    guard = ConnectionGuard(
        10.0, max_per_address=1, exempt=TrustedForwarders(["127.0.0.0/31"]).trusts
    )
    async with serving(guard) as port:
        held = [await connect(port) for _ in range(4)]  # 127.0.0.1: trusted
        first = await connect(port, source="127.0.0.2")
        reader, writer = await connect(port, source="127.0.0.2")
        assert (await read_all(reader)).startswith(b"HTTP/1.1 429 ")
        for _, w in [*held, first, (reader, writer)]:
            w.close()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
