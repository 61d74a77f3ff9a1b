"""StreamRelay and NodeStream over a scripted node on a real socket and a scripted ASGI client:
bytes in, bytes out, and every way a relay ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.store.node_record import NodeRecord
from proxy.errors import NodeUnavailableError
from proxy.node_stream import NodeStream
from proxy.passthrough import RelayBoard, StreamRelay
from proxy.upstream import Upstream

pytestmark = pytest.mark.timeout(10)

EVENTS = [
    b"event: init\nid: r/1\ndata: []\n\n",
    b"event: upd",
    b"ate\nid: r/2\ndata: [[1,[2]]]\n\n",
]
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
)


class Node:
    """A node on 127.0.0.1 whose one stream response the test writes chunk by chunk."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self.reply_head: bytes | None = HEAD
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Node:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        if self.writer is not None:
            self.writer.close()
        self._server.close()

    @property
    def record(self) -> NodeRecord:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return NodeRecord(
            node_id="n1", role="follower", epoch="e", applied=1, ts_ms=0, started_ms=0,
            ready=True, url=f"http://127.0.0.1:{port}",
        )  # fmt: skip

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        if self.reply_head is not None:
            writer.write(self.reply_head)
        self.connected.set()
        await reader.read()  # until the proxy closes its side
        self.closed.set()

    def chunk(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self) -> None:
        assert self.writer is not None
        self.writer.write(b"0\r\n\r\n")

    def reset(self) -> None:
        assert self.writer is not None
        self.writer.transport.abort()


class Client:
    """The ASGI side: records what the relay sends; `leave()` disconnects."""

    def __init__(self, block_sends: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.block_sends = block_sends

    async def receive(self) -> dict[str, Any]:
        # As the ASGI spec has it: a disconnect once the client left or the response is done.
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.block_sends and message["type"] == "http.response.body":
            await asyncio.Event().wait()  # a client that stopped reading
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.gone.set()

    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.sent if m["type"] == "http.response.body")

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


def upstream(token: str | None = None) -> Upstream:
    return Upstream(token=token, connect_timeout_s=1.0, request_timeout_s=1.0)


async def relay(
    node: Node, client: Client, board: RelayBoard | None = None
) -> tuple[asyncio.Task[None], list[str], NodeStream]:
    closed: list[str] = []
    stream = await upstream().open_stream(node.record, "s1", None)
    response = StreamRelay(stream, send_timeout_s=0.3, on_close=lambda: closed.append("closed"))
    if board is not None:
        board.add(response)
    task = asyncio.create_task(response({"type": "http"}, client.receive, client.send))
    return task, closed, stream


async def until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_chunks_are_relayed_as_they_come_unchanged() -> None:
    async with Node() as node:
        client = Client()
        task, closed, _ = await relay(node, client)
        sent = b""
        for chunk in EVENTS:
            node.chunk(chunk)
            sent += chunk
            # Each chunk is sent on before the next one exists: nothing is held back.
            await until(lambda sent=sent: client.body() == sent)
        node.finish()  # the node ends the stream
        await task
        start = client.sent[0]
        assert start["status"] == 200
        assert dict(start["headers"]) == {
            b"content-type": b"text/event-stream", b"cache-control": b"no-cache",
            b"x-accel-buffering": b"no",
        }  # fmt: skip
        assert client.bodies()[-1] == b""
        assert [m.get("more_body", False) for m in client.sent[1:]][-1] is False
        assert closed == ["closed"]
        await asyncio.wait_for(node.closed.wait(), 2)


async def test_the_request_carries_last_event_id_and_the_token_only() -> None:
    async with Node() as node:
        stream = await upstream("tok").open_stream(node.record, "a b/c", "run/7")
        stream.close()
        request = node.requests[0].decode()
        assert request.startswith("GET /v1/streams/a%20b%2Fc HTTP/1.1\r\n")
        assert "Last-Event-ID: run/7\r\n" in request
        assert "Authorization: Bearer tok\r\n" in request
        assert "Accept: text/event-stream\r\n" in request


async def test_a_last_event_id_with_a_line_break_is_not_forwarded() -> None:
    async with Node() as node:
        stream = await upstream().open_stream(node.record, "s1", "r/1\r\nX-Evil: 1")
        stream.close()
        assert b"X-Evil" not in node.requests[0]
        assert b"Last-Event-ID" not in node.requests[0]


async def test_a_dying_node_ends_the_client_response_cleanly() -> None:
    async with Node() as node:
        client = Client()
        task, closed, _ = await relay(node, client)
        node.chunk(EVENTS[0])
        node.chunk(EVENTS[1])  # half an event, then the connection breaks
        await until(lambda: client.body() == EVENTS[0] + EVENTS[1])
        node.reset()
        await task
        # The client gets a complete response and reconnects; the half event is never
        # dispatched.
        assert client.body() == EVENTS[0] + EVENTS[1]
        assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
        assert closed == ["closed"]


async def test_a_client_leaving_closes_the_node_connection() -> None:
    async with Node() as node:
        client = Client()
        task, closed, _ = await relay(node, client)
        node.chunk(EVENTS[0])
        await until(lambda: client.body() == EVENTS[0])
        client.gone.set()
        await task
        assert client.body() == EVENTS[0]  # nothing more sent to a gone client
        assert closed == ["closed"]
        await asyncio.wait_for(node.closed.wait(), 2)


async def test_the_board_ends_a_nodes_relays_and_all_at_shutdown() -> None:
    board = RelayBoard()
    async with Node() as node:
        client = Client()
        task, _, _ = await relay(node, client, board)
        node.chunk(EVENTS[0])
        await until(lambda: client.body() == EVENTS[0])
        assert len(board) == 1
        assert board.end_node("other") == 0
        assert board.end_node("n1") == 1
        await task
        assert client.bodies()[-1] == b""
        await asyncio.wait_for(node.closed.wait(), 2)
    async with Node() as node:
        client = Client()
        task, _, _ = await relay(node, client, board)
        board.stop()
        await task
        assert client.sent[-1]["more_body"] is False
    async with Node() as node:
        # After stop, a relay is ended as soon as it is added.
        client = Client()
        task, _, _ = await relay(node, client, board)
        await asyncio.wait_for(task, 2)


async def test_a_client_that_stops_reading_is_dropped() -> None:
    async with Node() as node:
        client = Client(block_sends=True)
        task, closed, _ = await relay(node, client)
        node.chunk(EVENTS[0])
        await asyncio.wait_for(task, 2)  # the send timeout (0.3 s) ended it
        assert closed == ["closed"]
        await asyncio.wait_for(node.closed.wait(), 2)


async def test_a_slow_client_pauses_reading_from_the_node() -> None:
    async with Node() as node:
        stream = await upstream().open_stream(node.record, "s1", None)
        for i in range(200):
            node.chunk(b"data: %d\n\n" % i)
            await asyncio.sleep(0)  # separate reads
        await asyncio.sleep(0.2)
        assert stream._paused  # nobody took anything: the socket is no longer read
        got = b""
        while len(got) < sum(len(b"data: %d\n\n" % i) for i in range(200)):
            chunk = await asyncio.wait_for(stream.next_chunk(), 2)
            assert chunk is not None
            got += chunk
        assert got == b"".join(b"data: %d\n\n" % i for i in range(200))
        assert not stream._paused
        stream.close()


async def test_an_error_reply_is_read_whole_and_bounded() -> None:
    async with Node() as node:
        body = b'{"error":"unknown stream"}'
        node.reply_head = (
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        stream = await upstream().open_stream(node.record, "s1", None)
        assert stream.status == 404
        assert stream.headers["content-type"] == "application/json"
        assert await stream.read_whole() == body
    async with Node() as node:
        node.reply_head = b"HTTP/1.1 503 x\r\ncontent-length: 20\r\n\r\n" + b"x" * 20
        stream = await upstream().open_stream(node.record, "s1", None)
        assert await stream.read_whole(limit=15) == b"x" * 15


async def test_a_node_that_never_answers_or_is_not_there_is_unavailable() -> None:
    async with Node() as node:
        node.reply_head = None
        with pytest.raises(NodeUnavailableError, match="no response head"):
            await upstream().open_stream(node.record, "s1", None)
    async with Node() as node:
        node.reply_head = b"garbage\r\n\r\n"
        with pytest.raises(NodeUnavailableError, match="malformed"):
            await upstream().open_stream(node.record, "s1", None)
        record = node.record
    with pytest.raises(NodeUnavailableError, match="connect"):
        await upstream().open_stream(record, "s1", None)
