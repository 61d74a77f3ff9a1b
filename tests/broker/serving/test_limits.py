"""Configurable limits, each a clear 4xx that changes nothing: streams per node and per
resource instance (429), body size (413, covering params, keys and values)."""

from __future__ import annotations

import httpx
import pytest

from broker import ServeConfig, create_app
from broker.errors import ConfigError
from broker.serving.hub import Hub
from graph import Engine
from tests.broker.conftest import HubFactory
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(10)


async def client(make_hub: HubFactory, **overrides: int) -> httpx.AsyncClient:
    hub = make_hub(**overrides)
    config = ServeConfig(port=0, max_body_bytes=4096, **overrides)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(hub, config))
    return httpx.AsyncClient(transport=transport, base_url="http://skiff.test")


async def test_streams_per_instance_are_bounded(make_hub: HubFactory) -> None:
    async with await client(make_hub, max_streams_per_instance=2) as http:
        for _ in range(2):
            assert (await http.post("/v1/streams/top", json={"limit": 3})).status_code == 201
        refused = await http.post("/v1/streams/top", json={"limit": 3})
        assert refused.status_code == 429
        assert "too many streams" in refused.json()["error"]
        # Another instance still has room.
        assert (await http.post("/v1/streams/top", json={"limit": 4})).status_code == 201


async def test_streams_per_node_are_bounded(make_hub: HubFactory) -> None:
    async with await client(make_hub, max_streams=3) as http:
        for limit in range(3):
            assert (await http.post("/v1/streams/top", json={"limit": limit})).status_code == 201
        refused = await http.post("/v1/streams/top", json={"limit": 9})
        assert refused.status_code == 429


async def test_an_oversized_key_value_or_params_body_is_413(make_hub: HubFactory) -> None:
    async with await client(make_hub) as http:
        before = (await http.post("/v1/snapshot/top", json={"limit": 100})).json()
        big = "x" * 5000
        assert (await http.patch("/v1/inputs/posts", json=[[big, [{}]]])).status_code == 413
        assert (await http.patch("/v1/inputs/posts", json=[["k", [big]]])).status_code == 413
        assert (
            await http.post("/v1/streams/top", json={"limit": 3, "pad": big})
        ).status_code == 413
        assert (await http.post("/v1/snapshot/top", json={"limit": 100})).json() == before


@pytest.mark.parametrize("field", ["max_streams", "max_streams_per_instance"])
def test_stream_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError):
        ServeConfig(**{field: 0})  # type: ignore[arg-type]


async def test_params_key_and_value_sizes_are_limited_with_413_and_change_nothing() -> None:
    config = ServeConfig(max_params_bytes=64, max_key_bytes=32, max_value_bytes=128)
    hub = Hub(Engine.for_service(make_service()), run="r", config=config)
    app = create_app(hub, config)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://node"
    ) as http:
        before = hub.engine.version
        big_params = {"limit": 3, "pad": "x" * 100}
        for path in ("/v1/streams/top", "/v1/snapshot/top"):
            response = await http.post(path, json=big_params)
            assert response.status_code == 413, response.text
            assert "params" in response.json()["error"]
        lookup = await http.post("/v1/snapshot/top/lookup", json={"key": "k" * 40, "params": {}})
        assert lookup.status_code == 413 and "key" in lookup.json()["error"]
        long_key = await http.patch("/v1/inputs/votes", json=[["k" * 40, [{"post": 1}]]])
        assert long_key.status_code == 413 and "key" in long_key.json()["error"]
        big_value = await http.patch(
            "/v1/inputs/votes", json=[["v1", [{"post": 1, "pad": "y" * 200}]]]
        )
        assert big_value.status_code == 413 and "value" in big_value.json()["error"]
        assert hub.engine.version == before
        small = await http.patch("/v1/inputs/votes", json=[["v9", [{"post": 1, "user": "u"}]]])
        assert small.status_code == 200
