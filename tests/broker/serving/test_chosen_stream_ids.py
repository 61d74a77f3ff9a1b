"""Streams created under an id the proxy chose (`X-Skiff-Stream-Id`), for re-homing."""

from __future__ import annotations

import httpx
import pytest

from broker import Hub, ServeConfig, create_app
from broker.errors import StreamIdConflictError
from tests.broker.conftest import HubFactory

pytestmark = pytest.mark.timeout(10)

CHOSEN = "f-0.AAECAwQFBgcICQoLDA0ODw"


async def test_hub_creates_under_the_given_id_idempotently(hub: Hub) -> None:
    assert hub.create_stream("top", {"limit": 2}, stream_id=CHOSEN) == CHOSEN
    assert hub.has_stream(CHOSEN)
    # Again on the same instance (two proxies re-homing at once): the same stream, once.
    assert hub.create_stream("top", {"limit": 2}, stream_id=CHOSEN) == CHOSEN
    assert (hub.stream_count, hub.instance_count) == (1, 1)
    with pytest.raises(StreamIdConflictError):
        hub.create_stream("top", {"limit": 3}, stream_id=CHOSEN)
    # The refused instance was not kept alive.
    assert (hub.stream_count, hub.instance_count) == (1, 1)


async def test_route_honours_the_header(http: httpx.AsyncClient, hub: Hub) -> None:
    headers = {"X-Skiff-Stream-Id": CHOSEN}
    response = await http.post("/v1/streams/top", json={"limit": 1}, headers=headers)
    assert (response.status_code, response.text) == (201, CHOSEN)
    again = await http.post("/v1/streams/top", json={"limit": 1}, headers=headers)
    assert (again.status_code, again.text) == (201, CHOSEN)
    conflict = await http.post("/v1/streams/top", json={"limit": 9}, headers=headers)
    assert conflict.status_code == 409 and "another instance" in conflict.json()["error"]
    for bad in ("short", "has space in it and more", "x" * 201, "a/b/cdefghijklmnopq"):
        response = await http.post("/v1/streams/top", json={}, headers={"X-Skiff-Stream-Id": bad})
        assert response.status_code == 400, bad
    assert hub.stream_count == 1


async def test_route_needs_the_token_when_one_is_set(make_hub: HubFactory) -> None:
    config = ServeConfig(port=0, control_token="tok")
    hub = make_hub(control_token="tok")
    transport = httpx.ASGITransport(app=create_app(hub, config))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        headers = {"X-Skiff-Stream-Id": CHOSEN}
        assert (await http.post("/v1/streams/top", json={}, headers=headers)).status_code == 401
        assert hub.stream_count == 0
        # Without a chosen id, creating a stream stays open to clients.
        assert (await http.post("/v1/streams/top", json={})).status_code == 201
        headers["Authorization"] = "Bearer tok"
        assert (await http.post("/v1/streams/top", json={}, headers=headers)).status_code == 201
