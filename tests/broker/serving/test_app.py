"""Every route of docs/protocol.md and every error, in process (the SSE bodies are tested against a
real server in test_serve_sse.py). A rejected request must leave the state unchanged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import Hub, ServeConfig, create_app, running
from graph import Engine
from tests.broker.conftest import HubFactory
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(10)

SSE = {"Accept": "text/event-stream"}


async def state(http: httpx.AsyncClient) -> Any:
    """Everything observable: the shared scores and posts through resources."""
    top = await http.post("/v1/snapshot/top", json={"limit": 100})
    ann = await http.post("/v1/snapshot/by_author", json={"author": "ann"})
    assert top.status_code == ann.status_code == 200
    return top.json(), ann.json()


def assert_error(response: httpx.Response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert fragment.lower() in body["error"].lower()


# -- health ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/v1/healthcheck"])
async def test_health(http: httpx.AsyncClient, hub: Hub, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "run": hub.run,
        "role": "single",
        "version": hub.engine.version,
    }
    hub.drain()
    response = await http.get(path)
    assert response.status_code == 503
    assert response.json()["error"] == "draining"


# -- PATCH /v1/inputs/{collection} -------------------------------------------------------------
async def test_patch_applies_and_returns_the_version(http: httpx.AsyncClient, hub: Hub) -> None:
    response = await http.patch(
        "/v1/inputs/votes", json=[["v3", [{"post": 3, "user": "cy"}]], ["v1", []]]
    )
    assert response.status_code == 200
    assert response.json() == {"version": 1}
    top, _ = await state(http)
    assert top == [[2, [1]], [3, [1]]]
    assert (await http.patch("/v1/inputs/votes", json=[])).json() == {"version": 2}


async def test_patch_queues_updates_before_it_answers(http: httpx.AsyncClient, hub: Hub) -> None:
    reader = hub.subscribe(hub.create_stream("top", {}))
    reader.take()
    response = await http.patch("/v1/inputs/votes", json=[["v3", [{"post": 2, "user": "x"}]]])
    assert response.status_code == 200
    # No await since the reply: the update must already be waiting for the reader.
    assert reader.take() == b"event: update\nid: testrun/1\ndata: [[2,[2]]]\n\n"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "malformed JSON"),
        (b"[NaN]", 400, "malformed JSON"),
        (b'{"v1": []}', 400, "list of"),
        (b'"text"', 400, "list of"),
        (b"[1]", 400, "entry 0"),
        (b'[["k"]]', 400, "entry 0"),
        (b'[["k", [1], 2]]', 400, "entry 0"),
        (b'[["k", 1]]', 400, "values must be a list"),
        (b'[["ok", [{"post": 1, "user": "a"}]], ["k", "x"]]', 400, "entry 1"),
        (b"[[" + b"[" * 990 + b"]" * 990 + b", [1]]]", 400, "nested"),
        (b'[["v9", [{"post": 1, "user": "a", "explode": true}]]]', 422, "VotesByPost"),
    ],
)
async def test_patch_rejections_change_nothing(
    http: httpx.AsyncClient, hub: Hub, body: bytes, status: int, fragment: str
) -> None:
    before = await state(http)
    response = await http.patch(
        "/v1/inputs/votes", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, status, fragment)
    assert await state(http) == before
    assert hub.engine.version == 0


async def test_user_code_error_names_the_mapper_and_the_key(http: httpx.AsyncClient) -> None:
    response = await http.patch(
        "/v1/inputs/votes", json=[["v9", [{"post": 1, "user": "a", "explode": True}]]]
    )
    assert_error(response, 422, "mapper VotesByPost failed on key 'v9'")


@pytest.mark.parametrize("collection", ["nope", "scores"])
async def test_patch_unknown_collection(http: httpx.AsyncClient, collection: str) -> None:
    response = await http.patch(f"/v1/inputs/{collection}", json=[["k", [1]]])
    assert_error(response, 404, collection)


async def test_patch_body_too_large_by_content_length(http: httpx.AsyncClient, hub: Hub) -> None:
    entries = [[f"v{i}", [{"post": 1, "user": "x" * 50}]] for i in range(100)]
    response = await http.patch("/v1/inputs/votes", json=entries)
    assert_error(response, 413, "4096 bytes")
    assert hub.engine.version == 0


async def test_patch_body_too_large_when_streamed(http: httpx.AsyncClient, hub: Hub) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        for i in range(200):
            yield b'["v%d", [{"post": 1, "user": "xxxxxxxxxxxxxxxxxxxx"}]],' % i
        yield b'["end", []]]'

    # No Content-Length: the body arrives chunked and only counting the bytes catches it.
    response = await http.patch("/v1/inputs/votes", content=chunks())
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert hub.engine.version == 0


async def test_small_streamed_body_is_accepted(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'[["v3", [{"post": 2,'
        yield b' "user": "cy"}]]]'

    response = await http.patch("/v1/inputs/votes", content=chunks())
    assert response.status_code == 200


async def test_malformed_content_length(hub: Hub, config: ServeConfig) -> None:
    app = create_app(hub, config)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"[]", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PATCH",
        "scheme": "http",
        "path": "/v1/inputs/votes",
        "raw_path": b"/v1/inputs/votes",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", b"12x")],
        "server": ("test", 80),
        "client": ("test", 1),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
votes = st.fixed_dictionaries({"post": json_values, "user": json_values})
entries = st.lists(
    st.one_of(
        st.tuples(json_values, st.lists(st.one_of(votes, json_values), max_size=3)).map(list),
        json_values,
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(entries, json_values))
async def test_patch_never_answers_500(body: Any) -> None:
    hub = Hub(Engine.for_service(make_service()), run="fuzz", config=ServeConfig())
    try:
        transport = httpx.ASGITransport(app=create_app(hub, ServeConfig()))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            before = await state(http)
            response = await http.patch("/v1/inputs/votes", json=body)
            assert response.status_code in (200, 400, 422), response.text
            if response.status_code != 200:
                assert set(response.json()) == {"error"}
                assert await state(http) == before
                assert hub.engine.version == 0
    finally:
        hub.close()


# -- streams -----------------------------------------------------------------------------------
async def test_create_stream(http: httpx.AsyncClient, hub: Hub) -> None:
    response = await http.post("/v1/streams/top", json={"limit": 2})
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("text/plain")
    stream_id = response.text
    assert uuid.UUID(stream_id).version == 4
    assert hub.has_stream(stream_id)


async def test_create_stream_with_empty_body_uses_empty_params(http: httpx.AsyncClient) -> None:
    assert (await http.post("/v1/streams/top")).status_code == 201


@pytest.mark.parametrize(
    ("resource", "body", "status", "fragment"),
    [
        ("nope", b"{}", 404, "unknown resource"),
        ("top", b'{"limit": -1}', 400, "limit must be"),
        ("top", b"[1", 400, "malformed JSON"),
        ("by_author", b"{}", 400, "author"),
    ],
)
async def test_create_stream_rejections(
    http: httpx.AsyncClient, hub: Hub, resource: str, body: bytes, status: int, fragment: str
) -> None:
    response = await http.post(f"/v1/streams/{resource}", content=body)
    assert_error(response, status, fragment)
    assert (hub.stream_count, hub.engine.instance_count) == (0, 0)


@pytest.mark.parametrize(
    "accept",
    ["application/json", "text/html", "text/event-stream;q=0", "text/event-stream;q=0, */*"],
)
async def test_get_stream_needs_accept_event_stream(http: httpx.AsyncClient, accept: str) -> None:
    stream_id = (await http.post("/v1/streams/top", json={})).text
    response = await http.get(f"/v1/streams/{stream_id}", headers={"Accept": accept})
    assert_error(response, 406, "text/event-stream")


async def test_get_stream_accepts_what_skips_server_accepts() -> None:
    async with running(make_service(), ServeConfig(port=0, shutdown_timeout_s=1)) as node:
        host, port = urlsplit(node.url).hostname, urlsplit(node.url).port
        async with httpx.AsyncClient(base_url=node.url) as http:
            stream_id = (await http.post("/v1/streams/top", json={})).text
            for accept in ("", "*/*", "text/*", "application/json, */*;q=0.1"):
                headers = {"Accept": accept}
                async with http.stream("GET", f"/v1/streams/{stream_id}", headers=headers) as sse:
                    assert sse.status_code == 200, accept
                    assert await anext(sse.aiter_lines()) == "event: init"
        # No Accept header at all (httpx always sends one): a raw request.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /v1/streams/{stream_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"event: init")
        assert head.startswith(b"HTTP/1.1 200")
        writer.close()


async def test_get_unknown_stream(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v1/streams/nope", headers=SSE), 404, "unknown stream")


async def test_delete_stream(http: httpx.AsyncClient, hub: Hub) -> None:
    stream_id = (await http.post("/v1/streams/top", json={})).text
    response = await http.delete(f"/v1/streams/{stream_id}")
    assert response.status_code == 200
    assert response.json() == {}
    assert not hub.has_stream(stream_id)
    assert_error(await http.delete(f"/v1/streams/{stream_id}"), 404, "unknown stream")
    assert_error(await http.get(f"/v1/streams/{stream_id}", headers=SSE), 404)


async def test_draining_refuses_new_streams(http: httpx.AsyncClient, hub: Hub) -> None:
    hub.drain()
    assert_error(await http.post("/v1/streams/top", json={}), 503, "shutting down")


# -- snapshots ---------------------------------------------------------------------------------
async def test_snapshot(http: httpx.AsyncClient, hub: Hub) -> None:
    response = await http.post("/v1/snapshot/top", json={"limit": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [[1, [1]]]
    assert (await http.post("/v1/snapshot/by_author", json={"author": "ann"})).json() == [
        [1, ["hello"]],
        [3, ["again"]],
    ]
    assert hub.engine.instance_count == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/snapshot/nope", b"{}", 404, "unknown resource"),
        ("/v1/snapshot/top", b'{"limit": "x"}', 400, "limit must be"),
        ("/v1/snapshot/top", b"{", 400, "malformed JSON"),
        ("/v1/snapshot/nope/lookup", b'{"key": 1}', 404, "unknown resource"),
        ("/v1/snapshot/top/lookup", b"[1]", 400, '"key"'),
        ("/v1/snapshot/top/lookup", b'{"params": {}}', 400, '"key"'),
        ("/v1/snapshot/top/lookup", b"", 400, "malformed JSON"),
        ("/v1/snapshot/top/lookup", b'{"key": 1, "params": {"limit": null}}', 400, "limit"),
    ],
)
async def test_snapshot_rejections(
    http: httpx.AsyncClient, path: str, body: bytes, status: int, fragment: str
) -> None:
    assert_error(await http.post(path, content=body), status, fragment)


async def test_lookup(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/snapshot/top/lookup", json={"key": 2, "params": {"limit": 5}})
    assert response.status_code == 200
    assert response.json() == [1]
    missing = await http.post("/v1/snapshot/top/lookup", json={"key": "zz", "params": {}})
    assert missing.json() == []
    # params default to {} like an empty body elsewhere.
    assert (await http.post("/v1/snapshot/top/lookup", json={"key": 1})).json() == [1]


# -- routing -----------------------------------------------------------------------------------
async def test_unknown_route_and_method_are_json(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/nope"), 404)
    response = await http.put("/v1/inputs/votes", json=[])
    assert_error(response, 405)
    assert "PATCH" in response.headers["allow"]


async def test_split_roles(hub: Hub, config: ServeConfig) -> None:
    streaming = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub, config, role="streaming")),
        base_url="http://s",
    )
    control = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub, config, role="control")),
        base_url="http://c",
    )
    async with streaming, control:
        stream_id = (await control.post("/v1/streams/top", json={})).text
        assert (await control.patch("/v1/inputs/votes", json=[])).status_code == 200
        assert (await control.post("/v1/snapshot/top", json={})).status_code == 200
        assert_error(await control.get(f"/v1/streams/{stream_id}", headers=SSE), 405)
        assert_error(await streaming.patch("/v1/inputs/votes", json=[]), 404)
        assert_error(await streaming.post("/v1/streams/top", json={}), 405)
        assert_error(await streaming.delete(f"/v1/streams/{stream_id}"), 405)
        assert_error(await streaming.post("/v1/snapshot/top", json={}), 404)
        for client in (streaming, control):
            assert (await client.get("/healthz")).status_code == 200
        assert (await control.delete(f"/v1/streams/{stream_id}")).status_code == 200


# -- control token -----------------------------------------------------------------------------
async def test_control_token_guards_writes_and_deletes(make_hub: HubFactory) -> None:
    config = ServeConfig(control_token="s3cret")
    hub = make_hub(control_token="s3cret")
    transport = httpx.ASGITransport(app=create_app(hub, config))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        stream_id = (await http.post("/v1/streams/top", json={})).text
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
            assert_error(await http.patch("/v1/inputs/votes", json=[], headers=headers), 401)
            assert_error(await http.delete(f"/v1/streams/{stream_id}", headers=headers), 401)
        assert hub.engine.version == 0
        good = {"Authorization": "Bearer s3cret"}
        assert (await http.patch("/v1/inputs/votes", json=[], headers=good)).status_code == 200
        assert (await http.delete(f"/v1/streams/{stream_id}", headers=good)).status_code == 200
        # Reads need no token.
        assert (await http.post("/v1/snapshot/top", json={})).status_code == 200


async def test_an_oversized_or_unprintable_idempotency_key_is_a_400(
    http: httpx.AsyncClient, hub: Hub
) -> None:
    before = hub.engine.version
    for key in ("k" * 201, "tab\there"):
        response = await http.patch(
            "/v1/inputs/votes",
            json=[["v9", [{"post": 1, "user": "x"}]]],
            headers={"Idempotency-Key": key},
        )
        assert_error(response, 400, "Idempotency-Key")
    assert hub.engine.version == before
