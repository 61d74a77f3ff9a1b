"""ChunkSource and ChunkWriter: byte chunks taken from a source and written to an ASGI response,
from wherever they are produced.

A node's subscription (broker/serving/streams/subscription.py) and a proxy's node stream
(proxy/node_stream.py) are both queues of ready-to-send bytes feeding one SSE response. Waking the
response's task for each chunk — a future resolved, a task step through its whole await chain — cost
about as much as the socket write itself, paid per event per subscriber in a fan-out; and a second
task per response, to notice the client leaving, cost ~2 KB of every idle stream. So the response's
task only waits in `receive()` (which returns `http.disconnect` when the client leaves or once the
response is complete, as the ASGI spec has it), and each chunk is written from the code that
produced it (Hub.publish, a socket read). Only a write that has to wait — the client is not reading
— gets a task of its own, bounded by the send timeout.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from starlette.types import Message, Receive, Send

from broker.errors import BrokerError
from broker.http.eager_send import PendingSend, start_send


class ChunkSource(ABC):
    """A queue of chunks with one consumer: `next_chunk()`, or a ChunkWriter listening.

    Subclasses define `take()` and `finished`, and call `_wake()` when either may have changed.
    """

    __slots__ = ("_listener", "_waiter")

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Callable[[], None] | None = None

    @abstractmethod
    def take(self) -> bytes | None:
        """The next chunk, or None when none is waiting."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """No chunk will be added any more (some may still be waiting)."""

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call `listener` on every wake from now on (None: stop)."""
        self._listener = listener

    async def next_chunk(self) -> bytes | None:
        """The next chunk; None once finished and everything was taken."""
        while True:
            chunk = self.take()
            if chunk is not None or self.finished:
                return chunk
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._listener is not None:
            self._listener()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class ClientStuckError(BrokerError, TimeoutError):
    """A write waited longer than the send timeout: the client stopped reading."""


class ChunkWriter:
    """Writes a ChunkSource's chunks as the body of a started ASGI response, then completes the
    response when the source finishes. `run(receive)` is the response task's part."""

    __slots__ = ("_done", "_error", "_flushing", "_send", "_source", "_task", "_timeout_s")

    def __init__(self, source: ChunkSource, send: Send, timeout_s: float) -> None:
        self._source = source
        self._send = send
        self._timeout_s = timeout_s
        self._flushing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[object] | None = None
        self._error: BaseException | None = None
        self._done = False

    async def run(self, receive: Receive) -> None:
        """Until the client is gone or the response is complete. Raises ClientStuckError when
        a write timed out, or what a write raised."""
        self._task = asyncio.current_task()
        self._source.listen(self._pump)
        try:
            self._pump()
            while self._error is None and (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            task = self._task
            if self._error is None or task is None or task.uncancel() > 0:
                raise  # not (only) ours: a real cancellation
        finally:
            self._source.listen(None)
            if self._flushing is not None:
                self._flushing.cancel()
        if self._error is not None:
            raise self._error

    def _pump(self) -> None:
        # Runs inside whatever woke the source, so it never raises: an error ends run().
        if self._flushing is not None or self._done or self._error is not None:
            return
        source = self._source
        while True:
            chunk = source.take()
            if chunk is None:
                if source.finished:
                    self._done = True
                    self._write({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if not self._write({"type": "http.response.body", "body": chunk, "more_body": True}):
                return

    def _write(self, message: Message) -> bool:
        """Start writing `message`; False when it has to wait (or failed)."""
        try:
            pending = start_send(self._send, message)
        except Exception as err:
            self._fail(err)
            return False
        if pending is None:
            return True
        # Owned by this writer: run() cancels it on the way out, and _flush reports every
        # error it meets through _fail.
        self._flushing = asyncio.get_running_loop().create_task(self._flush(pending))
        return False

    async def _flush(self, pending: PendingSend) -> None:
        try:
            await pending.finish(self._timeout_s)
        except TimeoutError:
            self._fail(ClientStuckError("the client stopped reading"))
            return
        except Exception as err:
            self._fail(err)
            return
        self._flushing = None
        self._pump()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
