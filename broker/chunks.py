"""ChunkSource and ChunkWriter: byte chunks taken from a source and written to an ASGI response,
from wherever they are produced.

A node's subscription (broker/subscription.py) and a proxy's node stream (proxy/node_stream.py)
are both queues of ready-to-send bytes with one consumer, the response task of their SSE
connection. Waking that task for each chunk — a future resolved, a task step through its whole
await chain — cost about as much as the socket write itself, paid per event per subscriber in a
fan-out. So while the response task is idle, a ChunkWriter writes a new chunk at once from the
code that produced it (Hub.publish, a socket read), and only hands back to the task when a
write has to wait (the client is not reading) or the source finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import Message, Send

from broker.eager_send import PendingSend, send_within, start_send


class ChunkSource:
    """A queue of chunks with one consumer, which waits on a single future (no asyncio.Event:
    its waiter deque costs ~0.7 KB, and 10,000 idle streams is the design point).

    Subclasses define `take()` and `finished`, and call `_wake()` when either may have changed.
    """

    __slots__ = ("_waiter", "_writer")

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None
        self._writer: Callable[[], bool] | None = None

    def take(self) -> bytes | None:
        """The next chunk, or None when none is waiting."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """No chunk will be added any more (some may still be waiting)."""
        raise NotImplementedError

    async def next_chunk(self) -> bytes | None:
        """The next chunk; None once finished and everything was taken."""
        while True:
            chunk = self.take()
            if chunk is not None or self.finished:
                return chunk
            await self.wait()

    async def wait(self, writer: Callable[[], bool] | None = None) -> None:
        """Until woken (a chunk, the end). With `writer`, a wake first calls it: when it returns
        True it has dealt with what woke us, and the wait goes on."""
        self._waiter = asyncio.get_running_loop().create_future()
        self._writer = writer
        try:
            await self._waiter
        finally:
            self._waiter = self._writer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        writer = self._writer
        if writer is not None and not self.finished and writer():
            return
        waiter.set_result(None)


class ChunkWriter:
    """Writes a ChunkSource's chunks as body messages of a started ASGI response until it is
    finished; `run()` is the response task's part. A write that waits longer than `timeout_s`
    (the client stopped reading) raises TimeoutError from `run()`."""

    __slots__ = ("_error", "_pending", "_send", "_source", "_timeout_s", "written")

    def __init__(self, source: ChunkSource, send: Send, timeout_s: float) -> None:
        self._source = source
        self._send = send
        self._timeout_s = timeout_s
        self._pending: PendingSend | None = None
        self._error: Exception | None = None
        #: Bytes written so far.
        self.written = 0

    async def run(self) -> None:
        source = self._source
        while True:
            pending, self._pending = self._pending, None
            if pending is not None:
                await pending.finish(self._timeout_s)
            if self._error is not None:
                raise self._error
            chunk = source.take()
            if chunk is not None:
                self.written += len(chunk)
                await send_within(self._send, _body(chunk), self._timeout_s)
            elif source.finished:
                return
            else:
                await source.wait(self._write_now)

    def _write_now(self) -> bool:
        # Runs inside whatever woke the source: it must not raise, and it stops at the first
        # write that would wait, which run() then finishes under the timeout.
        while True:
            chunk = self._source.take()
            if chunk is None:
                return True
            self.written += len(chunk)
            try:
                self._pending = start_send(self._send, _body(chunk))
            except Exception as err:  # raised again by run(), in the response's task
                self._error = err
                return False
            if self._pending is not None:
                return False


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}
