"""SkiffClient: the control calls against the app in process, and the event stream's parsing and
reconnects against a scripted transport (test_serve_sse.py runs it against a real server)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from broker import (
    ClientError,
    Hub,
    Init,
    ServeConfig,
    SkiffClient,
    StreamDisconnectedError,
    StreamNotFoundError,
    StreamProtocolError,
    Update,
    create_app,
)
from broker.client import decode_event
from broker.http.sse import HEARTBEAT, SseMessage, encode_event

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
async def client(hub: Hub, config: ServeConfig) -> AsyncIterator[SkiffClient]:
    transport = httpx.ASGITransport(app=create_app(hub, config))
    async with SkiffClient("http://skiff.test", transport=transport) as client:
        yield client


async def test_control_calls(client: SkiffClient, hub: Hub) -> None:
    assert await client.snapshot("top", {"limit": 5}) == [(1, [1]), (2, [1])]
    assert await client.snapshot("top") == [(1, [1]), (2, [1])]
    assert await client.patch("votes", [("v3", [{"post": 2, "user": "cy"}])]) == 1
    assert await client.lookup("top", 2, {"limit": 5}) == [2]
    assert await client.lookup("top", 99) == []
    assert await client.delete_key("votes", "v3") == 2
    assert await client.lookup("top", 2) == [1]
    stream_id = await client.create_stream("top", {"limit": 1})
    assert hub.has_stream(stream_id)
    await client.delete_stream(stream_id)
    assert not hub.has_stream(stream_id)


async def test_errors_carry_status_and_message(client: SkiffClient) -> None:
    with pytest.raises(ClientError) as info:
        await client.patch("nope", [])
    assert (info.value.status, info.value.message) == (404, "unknown input collection 'nope'")
    assert type(info.value) is ClientError
    with pytest.raises(ClientError, match=r"400: .*limit must be"):
        await client.create_stream("top", {"limit": "x"})
    with pytest.raises(StreamNotFoundError):
        await client.delete_stream("nope")
    with pytest.raises(StreamNotFoundError):
        await anext(client.events("nope"))


def recording(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.MockTransport(record), seen


async def test_patch_sends_the_idempotency_key_and_the_token() -> None:
    transport, seen = recording(lambda request: httpx.Response(200, json={"version": 7}))
    async with SkiffClient("http://x", transport=transport, token="t0k") as client:
        assert await client.patch("votes", [], idempotency_key="abc") == 7
        await client.patch("votes", [])
    assert seen[0].headers["idempotency-key"] == "abc"
    assert "idempotency-key" not in seen[1].headers
    assert seen[0].headers["authorization"] == "Bearer t0k"
    assert seen[0].content == b"[]"


async def test_split_urls() -> None:
    transport, seen = recording(lambda request: httpx.Response(201, text="sid"))
    async with SkiffClient("http://stream", control_url="http://control", transport=transport) as c:
        assert await c.create_stream("top") == "sid"
    assert seen[0].url.host == "control"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (SseMessage("init", "[[1, [2]]]", "r/3"), Init("r", 3, [(1, [2])])),
        (SseMessage("update", '[["k", []]]', "r/4"), Update("r", 4, [("k", [])])),
        (SseMessage("update", "[]", "r/5"), Update("r", 5, [])),
        (SseMessage("update", "[]", None), None),
    ],
)
def test_decode_event(message: SseMessage, expected: Any) -> None:
    assert decode_event(message) == expected


@pytest.mark.parametrize(
    "message",
    [
        SseMessage("message", "[]", "r/1"),
        SseMessage("init", "[]", None),
        SseMessage("init", "[]", "r/x"),
        SseMessage("update", "{", "r/1"),
        SseMessage("update", "[1]", "r/1"),
        SseMessage("update", '{"a": 1}', "r/1"),
    ],
)
def test_decode_event_rejects(message: SseMessage) -> None:
    with pytest.raises(StreamProtocolError):
        decode_event(message)


class ScriptedServer:
    """Answers each GET of a stream with the next scripted body (bytes) or response."""

    def __init__(self, *bodies: bytes | httpx.Response | Exception) -> None:
        self.bodies = list(bodies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = self.bodies.pop(0)
        if isinstance(body, Exception):
            raise body
        if isinstance(body, httpx.Response):
            return body
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    def last_event_ids(self) -> list[str | None]:
        return [r.headers.get("last-event-id") for r in self.requests]


async def collect(client: SkiffClient, count: int, **options: Any) -> list[Any]:
    events = []
    async for event in client.events("sid", backoff_s=0.001, **options):
        events.append(event)
        if len(events) == count:
            break
    return events


async def test_events_skip_heartbeats_and_reconnect_with_the_last_id() -> None:
    server = ScriptedServer(
        encode_event("init", "r", 1, [(1, [1])]) + HEARTBEAT + encode_event("update", "r", 2, []),
        encode_event("update", "r", 4, [(1, [])]),
    )
    async with SkiffClient("http://x", transport=httpx.MockTransport(server)) as client:
        events = await collect(client, 3)
    assert events == [Init("r", 1, [(1, [1])]), Update("r", 2, []), Update("r", 4, [(1, [])])]
    assert server.last_event_ids() == [None, "r/2"]
    assert server.requests[0].headers["accept"] == "text/event-stream"


async def test_events_resume_from_a_given_id_and_survive_transport_errors() -> None:
    server = ScriptedServer(
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        encode_event("update", "r", 9, [("a", [1])]),
    )
    async with SkiffClient("http://x", transport=httpx.MockTransport(server)) as client:
        events = await collect(client, 1, last_event_id="r/8")
    assert events == [Update("r", 9, [("a", [1])])]
    assert server.last_event_ids() == ["r/8", "r/8", "r/8"]


async def test_events_give_up_after_max_attempts() -> None:
    server = ScriptedServer(*(httpx.ConnectError("refused") for _ in range(4)))
    async with SkiffClient("http://x", transport=httpx.MockTransport(server)) as client:
        with pytest.raises(StreamDisconnectedError, match="gave up after 3"):
            await collect(client, 1, max_attempts=3)
    assert len(server.requests) == 4


async def test_events_without_reconnect() -> None:
    server = ScriptedServer(encode_event("init", "r", 1, []), httpx.ReadError("reset"))
    async with SkiffClient("http://x", transport=httpx.MockTransport(server)) as client:
        assert [e async for e in client.events("sid", reconnect=False)] == [Init("r", 1, [])]
        with pytest.raises(StreamDisconnectedError):
            await anext(client.events("sid", reconnect=False))


async def test_a_deleted_stream_ends_with_stream_not_found() -> None:
    server = ScriptedServer(
        encode_event("init", "r", 1, []),
        httpx.Response(404, json={"error": "unknown stream 'sid'"}),
    )
    async with SkiffClient("http://x", transport=httpx.MockTransport(server)) as client:
        got = []
        with pytest.raises(StreamNotFoundError, match="unknown stream"):
            async for event in client.events("sid", backoff_s=0.001):
                got.append(event)
    assert got == [Init("r", 1, [])]


async def test_non_json_error_bodies() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="bad gateway"))
    async with SkiffClient("http://x", transport=transport) as client:
        with pytest.raises(ClientError, match="502: bad gateway"):
            await client.snapshot("top")
