"""SkipExternalService against Skip 0.0.15's own runtime (bench/skip/service.mjs's `items`
workload on Node.js): a skiff service can chain onto a Skip service. Skipped, with the reason,
when Node.js or Skip's packages are not here (`make bench-skip` installs them)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from bench import skip_runtime
from bench.endpoints import Endpoint
from broker.external import ExternalFetchError, SkipExternalService
from tests.support.json_api import Recorder
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(60)


def item(i: int) -> dict[str, object]:
    # bench/skip/service.mjs's itemValue(i)
    return {"id": i, "name": f"item-{i:08d}", "tags": ["alpha", "beta"], "pad": "x" * 40}


@pytest.fixture(scope="module")
def skip() -> Iterator[Endpoint]:
    reason = skip_runtime.unavailable_reason()
    if reason:
        pytest.skip(f"Skip's runtime is not here: {reason}")
    with skip_runtime.skip_service("items", keys=10, timeout=45) as endpoint:
        yield endpoint


async def test_a_skip_resource_as_an_external_collection(skip: Endpoint) -> None:
    remote = SkipExternalService.direct(skip.host, skip.stream_port, skip.control_port)
    seen = Recorder()
    try:
        await remote.subscribe("probe-3", "probe", {"key": 3}, seen)
        assert seen.updates == [([(3, [item(3)])], True)]
        changed = {"id": 3, "name": "renamed"}
        async with httpx.AsyncClient() as http:
            url = f"http://{skip.host}:{skip.control_port}/v1/inputs/items"
            response = await http.patch(url, json=[[3, [changed]], [4, [{"id": 4}]]])
            assert response.status_code == 200
            await eventually(lambda: seen.content == {3: [changed]}, within=10)
            assert seen.updates[-1] == ([(3, [changed])], False)  # key 4 is outside the slice
            remote.unsubscribe("probe-3")
            await http.patch(url, json=[[3, [item(3)]]])
        await asyncio.sleep(0.3)  # unsubscribed: the write above reaches nobody here
        assert seen.content == {3: [changed]} and not seen.errors
    finally:
        await remote.shutdown()


async def test_an_unknown_skip_resource_raises(skip: Endpoint) -> None:
    remote = SkipExternalService.direct(skip.host, skip.stream_port, skip.control_port)
    try:
        # Skip answers 500 "Key not found" (skiff: 404, an UnknownExternalResourceError).
        with pytest.raises(ExternalFetchError, match="streams/nope: 500") as caught:
            await remote.subscribe("x", "nope", {}, Recorder())
        assert caught.value.status == 500
    finally:
        await remote.shutdown()
