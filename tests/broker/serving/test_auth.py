"""Identity tokens at a node, over real sockets: refusals leave the state as it was, claims
reach the resources, a stream is its creator's, writes need a scope, an expired token ends its
stream, and no log line holds a token."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from broker import RunningNode, ServeConfig, running
from tests.support.auth_services import make_auth_service
from tests.support.tokens import hs_config, hs_token, writer

pytestmark = pytest.mark.timeout(30)

CONTROL = "control-token-for-the-auth-tests"
SSE = {"Accept": "text/event-stream"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    config = ServeConfig(port=0, shutdown_timeout_s=1, control_token=CONTROL, jwt=hs_config())
    async with running(make_auth_service(), config, run="run-1", access_log=True) as node:
        yield node


@pytest.fixture
async def http(node: RunningNode) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as client:
        yield client


async def test_bad_tokens_are_401_and_change_nothing(
    node: RunningNode, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    bad = {
        hs_token(key="not-the-secret-not-the-secret-0123456"): "invalid token: bad signature",
        hs_token(exp=now - 120): "invalid token: expired",
        hs_token(nbf=now + 120): "invalid token: not yet valid",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.": "invalid token: algorithm not allowed",
        "garbage": "invalid token: malformed",
    }
    hub = node.hub
    for token, message in bad.items():
        for method, path, body in (
            ("POST", "/v1/streams/mine", {}),
            ("POST", "/v1/streams/public", {}),
            ("POST", "/v1/snapshot/mine", {}),
            ("PATCH", "/v1/inputs/notes", [["n1", ["x"]]]),
        ):
            reply = await http.request(method, path, json=body, headers=bearer(token))
            assert reply.status_code == 401, (path, token)
            assert reply.json() == {"error": message}
    assert hub.stream_count == 0 and hub.engine.version == 0 and hub.engine.instance_count == 0
    for token in bad:
        assert all(token not in record.getMessage() for record in caplog.records)


async def test_public_resources_are_open_and_others_need_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.post("/v1/snapshot/public", json={})).status_code == 200
    reply = await http.post("/v1/streams/mine", json={})
    assert reply.status_code == 401
    assert reply.json() == {"error": "missing token: resource 'mine' is not public"}
    # The control token is an operator's, not a user's: it reads no private resource.
    assert (
        await http.post("/v1/snapshot/mine", json={}, headers=bearer(CONTROL))
    ).status_code == 401
    assert (
        await http.post("/v1/snapshot/nope", json={}, headers=bearer(hs_token()))
    ).status_code == 404


async def test_claims_reach_the_resource(node: RunningNode, http: httpx.AsyncClient) -> None:
    alice = await http.post("/v1/snapshot/mine", json={}, headers=bearer(hs_token("alice")))
    bob = await http.post("/v1/snapshot/mine", json={}, headers=bearer(hs_token("bob")))
    assert alice.json() == [["d1", ["alice's first"]], ["d3", ["alice's second"]]]
    assert bob.json() == [["d2", ["bob's"]]]
    mine = await http.post("/v1/snapshot/doc", json={"id": "d1"}, headers=bearer(hs_token("alice")))
    assert mine.status_code == 200
    theirs = await http.post("/v1/snapshot/doc", json={"id": "d1"}, headers=bearer(hs_token("bob")))
    assert theirs.status_code == 403
    assert theirs.json() == {"error": "document 'd1' is not yours"}
    lookup = await http.post(
        "/v1/snapshot/doc/lookup", json={"key": "d2", "params": {"id": "d2"}},
        headers=bearer(hs_token("alice")),
    )  # fmt: skip
    assert lookup.status_code == 403
    assert node.hub.engine.instance_count == 0


async def test_writes_need_a_scope_or_the_control_token(
    node: RunningNode, http: httpx.AsyncClient
) -> None:
    async def patch(headers: dict[str, str]) -> int:
        reply = await http.patch("/v1/inputs/notes", json=[["n", ["x"]]], headers=headers)
        return reply.status_code

    assert await patch({}) == 401
    assert await patch(bearer(hs_token("alice"))) == 403
    assert await patch(bearer(writer("alice", "docs"))) == 403
    assert node.hub.engine.version == 0
    assert await patch(bearer(writer("alice", "notes"))) == 200
    assert await patch(bearer(writer("root", "*"))) == 200
    assert await patch(bearer(CONTROL)) == 200
    # The user's token beside the control token (how the proxy forwards): the user's rules.
    assert await patch({**bearer(CONTROL), "X-Skiff-User-Token": hs_token("bob")}) == 403
    # A cookie never authorises a write (a cross-site form could send it).
    assert await patch({"Cookie": f"skiff_token={writer('alice', 'notes')}"}) == 401
    assert node.hub.engine.version == 3


async def read_head(url: str, stream_id: str, *headers: str, query: str = "") -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer_ = await asyncio.open_connection(host, int(port))
    lines = [f"GET /v1/streams/{stream_id}{query} HTTP/1.1", "Host: x",
             "Accept: text/event-stream", *headers]  # fmt: skip
    writer_.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        async with asyncio.timeout(5):
            data = b""
            while b"\r\n\r\n" not in data or (b" 200 " in data and b"event:" not in data):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
    finally:
        writer_.close()
    return data


async def test_a_stream_is_its_creators(node: RunningNode, http: httpx.AsyncClient) -> None:
    alice, bob = hs_token("alice"), hs_token("bob")
    created = await http.post("/v1/streams/mine", json={}, headers=bearer(alice))
    assert created.status_code == 201
    stream_id = created.text
    assert node.hub.owner_of(stream_id) == "alice"
    url = node.url
    # Each way of reading: the connection's own path, and the ASGI one (a resume).
    for resume in ((), ("Last-Event-ID: run-1/0",)):
        ok = await read_head(url, stream_id, f"Authorization: Bearer {alice}", *resume)
        assert ok.startswith(b"HTTP/1.1 200") and b"event:" in ok
        ok = await read_head(url, stream_id, *resume, query=f"?access_token={alice}")
        assert ok.startswith(b"HTTP/1.1 200")
        ok = await read_head(url, stream_id, f"Cookie: skiff_token={alice}", *resume)
        assert ok.startswith(b"HTTP/1.1 200")
        other = await read_head(url, stream_id, f"Authorization: Bearer {bob}", *resume)
        assert other.startswith(b"HTTP/1.1 404") and b"unknown stream" in other
        nobody = await read_head(url, stream_id, *resume)
        assert nobody.startswith(b"HTTP/1.1 401")
        forged = await read_head(url, stream_id, *resume, query="?access_token=x.y.z")
        assert forged.startswith(b"HTTP/1.1 401")
    # Not even the proxy's way (control token + user token) reads it as someone else.
    relayed = await read_head(url, stream_id, f"Authorization: Bearer {CONTROL}",
                              f"X-Skiff-User-Token: {bob}")  # fmt: skip
    assert relayed.startswith(b"HTTP/1.1 404")
    assert (await http.delete(f"/v1/streams/{stream_id}", headers=bearer(bob))).status_code == 404
    assert (await http.delete(f"/v1/streams/{stream_id}")).status_code == 401
    assert node.hub.has_stream(stream_id)
    assert (await http.delete(f"/v1/streams/{stream_id}", headers=bearer(alice))).status_code == 200
    assert not node.hub.has_stream(stream_id)
    # An operator may delete anyone's stream.
    again = (await http.post("/v1/streams/mine", json={}, headers=bearer(alice))).text
    assert (await http.delete(f"/v1/streams/{again}", headers=bearer(CONTROL))).status_code == 200


async def test_anonymous_streams_of_public_resources_are_read_by_id(
    http: httpx.AsyncClient, node: RunningNode
) -> None:
    stream_id = (await http.post("/v1/streams/public", json={})).text
    assert node.hub.owner_of(stream_id) is None
    head = await read_head(node.url, stream_id)
    assert head.startswith(b"HTTP/1.1 200")


async def test_a_stream_ends_when_its_token_expires() -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1, jwt=hs_config(leeway_s=0))
    async with running(make_auth_service(), config, run="run-1") as node:
        token = hs_token("alice", exp=int(time.time()) + 2)
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:

            async def read(query: str, headers: dict[str, str]) -> str:
                created = await http.post("/v1/streams/mine", json={}, headers=bearer(token))
                path = f"/v1/streams/{created.text}{query}"
                text = ""
                async with http.stream("GET", path, headers={**SSE, **headers}) as stream:
                    assert stream.status_code == 200
                    async for chunk in stream.aiter_text():
                        text += chunk
                return text

            started = time.monotonic()
            # The connection's own path (a header) and the ASGI path (the query, with a resume).
            texts = await asyncio.gather(
                read("", bearer(token)),
                read(f"?access_token={token}", {"Last-Event-ID": "run-1/0"}),
            )
            assert time.monotonic() - started < 4
            for text in texts:
                assert 'event: error\ndata: {"error":"token expired' in text
            # Reconnecting with the expired token: refused.
            stream_id = next(iter(node.hub.connected_stream_ids()), None)
            assert stream_id is None
            reply = await http.post("/v1/streams/mine", json={}, headers=bearer(token))
            assert reply.status_code == 401 and reply.json()["error"] == "invalid token: expired"


async def test_no_log_line_holds_a_token(
    node: RunningNode, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    alice = hs_token("alice")
    stream_id = (await http.post("/v1/streams/mine", json={}, headers=bearer(alice))).text
    for resume in ((), ("Last-Event-ID: run-1/0",)):
        head = await read_head(node.url, stream_id, *resume, query=f"?access_token={alice}")
        assert head.startswith(b"HTTP/1.1 200")
    await read_head(node.url, stream_id, query="?access_token=forged.tok.en")
    await asyncio.sleep(0.1)
    lines = [record.getMessage() for record in caplog.records]
    assert any("/v1/streams/" in line for line in lines), lines
    assert not [line for line in lines if alice in line or "forged.tok.en" in line]
