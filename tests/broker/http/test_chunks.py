"""ChunkSource / ChunkWriter: chunks are written from where they are produced while the response
task waits in receive(), in order; a write that has to wait gets a task and the send timeout;
the response is completed when the source finishes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.http.chunks import ChunkSource, ChunkWriter, ClientStuckError

pytestmark = pytest.mark.timeout(10)


class Queue(ChunkSource):
    __slots__ = ("chunks", "done")

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.done = False

    def take(self) -> bytes | None:
        return self.chunks.pop(0) if self.chunks else None

    @property
    def finished(self) -> bool:
        return self.done

    def put(self, chunk: bytes) -> None:
        self.chunks.append(chunk)
        self._wake()

    def end(self) -> None:
        self.done = True
        self._wake()


class Client:
    """The server side of a connection: receive() returns http.disconnect once the client left
    or the response is complete (the ASGI spec)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.complete = False
        self.blocked = asyncio.Event()
        self.blocked.set()
        self.gone = asyncio.Event()
        self.fail: Exception | None = None

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        await self.blocked.wait()  # a full socket buffer until set
        if message["more_body"]:
            self.bodies.append(message["body"])
        else:
            self.complete = True
            self.gone.set()


async def started(source: Queue, client: Client, timeout_s: float = 5.0) -> asyncio.Task[None]:
    task = asyncio.create_task(ChunkWriter(source, client.send, timeout_s).run(client.receive))
    await asyncio.sleep(0.01)  # it is waiting in receive() now
    return task


async def test_chunks_produced_while_idle_are_written_in_place() -> None:
    source, client = Queue(), Client()
    task = await started(source, client)
    source.put(b"a")
    source.put(b"b")
    # Written by put() itself: nothing was awaited since.
    assert client.bodies == [b"a", b"b"]
    source.end()
    assert client.complete  # end() completed the response in place too
    await asyncio.wait_for(task, 1)


async def test_the_client_leaving_ends_the_writer_and_stops_listening() -> None:
    source, client = Queue(), Client()
    task = await started(source, client)
    client.gone.set()
    await asyncio.wait_for(task, 1)
    source.put(b"late")
    assert client.bodies == []
    assert source.take() == b"late"


async def test_a_write_that_waits_is_finished_by_the_task_in_order() -> None:
    source, client = Queue(), Client()
    task = await started(source, client)
    client.blocked.clear()
    source.put(b"a")  # this write waits for the socket
    source.put(b"b")  # queued behind it
    source.put(b"c")
    assert client.bodies == []
    client.blocked.set()
    await asyncio.sleep(0.05)
    assert client.bodies == [b"a", b"b", b"c"]
    source.put(b"d")
    assert client.bodies[-1] == b"d"
    source.end()
    await asyncio.wait_for(task, 1)


async def test_a_write_that_waits_too_long_ends_the_writer() -> None:
    source, client = Queue(), Client()
    task = await started(source, client, timeout_s=0.05)
    client.blocked.clear()
    source.put(b"a")
    with pytest.raises(ClientStuckError):
        await asyncio.wait_for(task, 2)


async def test_an_error_of_an_in_place_write_is_raised_by_the_task() -> None:
    source, client = Queue(), Client()
    task = await started(source, client)
    client.fail = OSError("reset")
    source.put(b"a")  # put() itself does not raise
    with pytest.raises(OSError, match="reset"):
        await asyncio.wait_for(task, 2)


async def test_what_is_queued_before_the_end_is_written_first() -> None:
    source, client = Queue(), Client()
    source.chunks += [b"a", b"b"]
    source.done = True
    await asyncio.wait_for(ChunkWriter(source, client.send, 1.0).run(client.receive), 1)
    assert client.bodies == [b"a", b"b"]
    assert client.complete
    assert await source.next_chunk() is None


async def test_a_cancelled_response_task_is_cancelled() -> None:
    source, client = Queue(), Client()
    task = await started(source, client)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
