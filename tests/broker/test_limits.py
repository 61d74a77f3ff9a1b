"""Configurable limits, each a clear 4xx that changes nothing: streams per node and per
resource instance (429), body size (413, covering params, keys and values)."""

from __future__ import annotations

import httpx
import pytest

from broker import ServeConfig, create_app
from broker.errors import ConfigError
from tests.broker.conftest import HubFactory

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
