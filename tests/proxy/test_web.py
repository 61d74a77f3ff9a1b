"""The proxy's web pages (proxy/web.py) and the status document (proxy/status.py).

The pages themselves are exercised in a browser by tests/web/test_browser.py.
"""

from __future__ import annotations

import httpx
import pytest

from broker.json_bytes import loads
from broker.store.keyspace import Keyspace
from proxy import RunningProxy
from tests.proxy.conftest import StartNode
from tests.proxy.nodes import proxy_config, running_proxy, until_serving

pytestmark = pytest.mark.timeout(20)


async def test_pages_and_assets(proxy: RunningProxy, http: httpx.AsyncClient) -> None:
    index = await http.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in index.text
    status = await http.get("/_skiff/")
    assert status.status_code == 200
    assert "/static/status.js" in status.text
    redirect = await http.get("/_skiff")
    assert (redirect.status_code, redirect.headers["location"]) == (307, "/_skiff/")
    for name, kind in [("skiff.js", "text/javascript"), ("app.js", "text/javascript"),
                       ("status.js", "text/javascript"), ("app.css", "text/css"),
                       ("status.css", "text/css")]:  # fmt: skip
        asset = await http.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(kind), name
    assert (await http.get("/static/nope.js")).status_code == 404
    assert (await http.get("/static/..%2Fweb.py")).status_code == 404


async def test_pages_fetch_nothing_from_elsewhere(http: httpx.AsyncClient) -> None:
    for path in ["/", "/_skiff/", "/static/app.js", "/static/status.js", "/static/skiff.js",
                 "/static/app.css", "/static/status.css"]:  # fmt: skip
        text = (await http.get(path)).text
        for marker in ("http://", "https://", "//cdn", "@import"):
            # The only absolute URLs are the SVG namespace and placeholder text.
            for line in text.splitlines():
                if marker in line:
                    assert "w3.org/2000/svg" in line or 'placeholder="https://' in line, line


async def test_status_document(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0")
    await until_serving(proxy, 1)
    created = await http.post("/v1/streams/top", json={"limit": 2})
    assert created.status_code == 201
    body = (await http.get("/_skiff/status")).json()
    assert body["redis"] == {"ok": True, "error": None}
    assert body["membership_ok"] is True
    assert body["service"] == proxy.gateway.keyspace.service  # type: ignore[union-attr]
    (node,) = body["nodes"]
    assert node["node_id"] == "f-0"
    assert node["alive"] and node["serving"] and node["role"] == "follower"
    assert node["streams"] >= 0
    # Scraped from the node's /metrics: this test node (a single-node app) exports no gauges of
    # a follower; tests/web/test_browser.py checks them on real followers.
    assert set(node) >= {"instances", "readers", "applied", "lag_versions", "last_seen_ms"}


async def test_status_events(
    proxy: RunningProxy, http: httpx.AsyncClient, start_node: StartNode
) -> None:
    await start_node("f-0")
    await until_serving(proxy, 1)
    async with http.stream("GET", "/_skiff/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                events.append(event)
            if len(events) >= 2:
                break
    for event in events:
        kind, data = event.split(b"\n", 1)
        assert kind == b"event: status"
        assert loads(data.removeprefix(b"data: "))["nodes"][0]["node_id"] == "f-0"


async def test_status_hides_node_urls_behind_a_control_token(
    redis_url: str, keyspace: Keyspace, start_node: StartNode
) -> None:
    await start_node("f-0")
    async with running_proxy(proxy_config(redis_url, keyspace, control_token="s3cret")) as proxy:
        await until_serving(proxy, 1)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            body = (await http.get("/_skiff/status")).json()
            assert (await http.get("/")).status_code == 200  # the pages need no token
    assert [n["url"] for n in body["nodes"]] == [None]
    assert body["nodes"][0]["alive"] is True
