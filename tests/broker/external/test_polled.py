"""PolledExternalService against a real HTTP server whose JSON changes between polls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.errors import BrokerError, ConfigError
from broker.external import (
    ExternalFetchError,
    ExternalServiceError,
    PolledExternalService,
    PolledHTTPResource,
    UnknownExternalResourceError,
)
from tests.support.json_api import JsonApi, Recorder, json_api
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(10)

INTERVAL = 0.05


def by_city(data: Any) -> list[tuple[Any, list[Any]]]:
    return [(row["city"], [row["temp"]]) for row in data]


@pytest.fixture
async def api() -> AsyncIterator[JsonApi]:
    async with json_api([{"city": "Paris", "temp": 12}, {"city": "Oslo", "temp": 3}]) as api:
        yield api


@pytest.fixture
async def service(api: JsonApi) -> AsyncIterator[PolledExternalService]:
    spec = PolledHTTPResource(
        url=f"{api.url}/weather", interval_s=INTERVAL, conv=by_city, headers={"X-Key": "k1"}
    )
    service = PolledExternalService({"weather": spec})
    yield service
    await service.shutdown()


async def test_subscribe_delivers_the_content_then_each_poll_replaces_it(
    api: JsonApi, service: PolledExternalService
) -> None:
    seen = Recorder()
    await service.subscribe("w1", "weather", {"units": "metric", "days": 2}, seen)
    # Delivered before subscribe returned, as the whole content.
    assert seen.updates[0] == ([("Paris", [12]), ("Oslo", [3])], True)
    first = api.seen[0]
    assert (first.path, first.query) == ("/weather", "units=metric&days=2")
    assert first.headers["x-key"] == "k1" and first.headers["accept"] == "application/json"

    api.body = [{"city": "Paris", "temp": 14}]  # Oslo gone, Paris warmer
    await eventually(lambda: seen.content == {"Paris": [14]}, within=2)
    # Every poll delivers the whole content again (a key missing from it is deleted).
    assert all(is_init for _, is_init in seen.updates)
    assert not seen.errors


async def test_a_failed_poll_is_an_error_and_polling_goes_on(
    api: JsonApi, service: PolledExternalService
) -> None:
    seen = Recorder()
    await service.subscribe("w1", "weather", {}, seen)
    api.status = 500
    await eventually(lambda: seen.errors, within=2)
    error = seen.errors[0]
    assert isinstance(error, ExternalFetchError) and error.status == 500
    assert seen.content == {"Paris": [12], "Oslo": [3]}  # the last content stays
    api.status, api.body = 200, [{"city": "Rome", "temp": 20}]
    await eventually(lambda: seen.content == {"Rome": [20]}, within=2)


async def test_a_body_conv_cannot_read_is_an_error(
    api: JsonApi, service: PolledExternalService
) -> None:
    seen = Recorder()
    await service.subscribe("w1", "weather", {}, seen)
    api.body = {"not": "rows"}
    await eventually(lambda: seen.errors, within=2)
    assert isinstance(seen.errors[0], ExternalServiceError)
    assert "conv" in str(seen.errors[0])


async def test_a_slow_answer_times_out(api: JsonApi) -> None:
    spec = PolledHTTPResource(url=api.url, interval_s=1, conv=by_city, timeout_s=0.05)
    service = PolledExternalService({"weather": spec})
    api.delay_s = 0.5
    with pytest.raises(ExternalFetchError) as caught:
        await service.subscribe("w1", "weather", {}, Recorder())
    assert caught.value.status is None
    await service.shutdown()


async def test_subscribe_raises_when_it_cannot_start(
    api: JsonApi, service: PolledExternalService
) -> None:
    with pytest.raises(UnknownExternalResourceError, match="'forecast'"):
        await service.subscribe("w1", "forecast", {}, Recorder())
    api.status = 503
    with pytest.raises(ExternalFetchError, match="503") as caught:
        await service.subscribe("w2", "weather", {}, Recorder())
    assert isinstance(caught.value, BrokerError) and caught.value.status == 503
    await asyncio.sleep(3 * INTERVAL)
    assert len(api.seen) == 1  # a subscription that failed does not poll


async def test_unsubscribe_stops_polling(api: JsonApi, service: PolledExternalService) -> None:
    seen, other = Recorder(), Recorder()
    await service.subscribe("w1", "weather", {}, seen)
    await service.subscribe("w2", "weather", {"city": "Oslo"}, other)
    await eventually(lambda: len(seen.updates) >= 2, within=2)
    service.unsubscribe("w1")
    service.unsubscribe("w1")  # idempotent
    service.unsubscribe("nobody")  # unknown: nothing happens
    delivered = len(seen.updates)
    await asyncio.sleep(4 * INTERVAL)
    assert len(seen.updates) == delivered
    assert all(s.query == "city=Oslo" for s in api.seen[-2:])  # w2 still polls
    assert len(other.updates) >= 3


async def test_unsubscribe_during_the_first_fetch_delivers_nothing(
    api: JsonApi, service: PolledExternalService
) -> None:
    api.delay_s = 0.2
    seen = Recorder()
    subscribing = asyncio.create_task(service.subscribe("w1", "weather", {}, seen))
    await eventually(lambda: api.seen)
    service.unsubscribe("w1")
    await subscribing  # returns: the subscription was stopped, not failed
    await asyncio.sleep(4 * INTERVAL)
    assert seen.updates == [] and len(api.seen) == 1


async def test_shutdown_stops_everything_and_the_service_can_start_again(
    api: JsonApi, service: PolledExternalService
) -> None:
    seen = Recorder()
    await service.subscribe("w1", "weather", {}, seen)
    await service.subscribe("w2", "weather", {"x": 1}, Recorder())
    await service.shutdown()
    polls = len(api.seen)
    await asyncio.sleep(4 * INTERVAL)
    assert len(api.seen) == polls
    await service.shutdown()  # twice is fine
    # A later node may use the same service object: a new client is made on first use.
    await service.subscribe("w1", "weather", {}, seen)
    await eventually(lambda: len(api.seen) > polls + 1, within=2)


def test_a_spec_is_validated() -> None:
    with pytest.raises(ConfigError):
        PolledHTTPResource(url="http://x", interval_s=0, conv=by_city)
    with pytest.raises(ConfigError):
        PolledHTTPResource(url="http://x", interval_s=1, conv=by_city, timeout_s=-1)


async def test_encode_params_may_build_the_path(api: JsonApi) -> None:
    spec = PolledHTTPResource(
        url=f"{api.url}/cities/",
        interval_s=1,
        conv=lambda data: [("one", [data])],
        encode_params=lambda params: f"{params['city']}?full=1",
    )
    service = PolledExternalService({"city": spec})
    api.body = None  # JSON null: conv is given [] (Skip's `data ?? []`)
    seen = Recorder()
    await service.subscribe("c", "city", {"city": "Lyon"}, seen)
    assert (api.seen[0].path, api.seen[0].query) == ("/cities/Lyon", "full=1")
    assert seen.updates == [([("one", [[]])], True)]
    await service.shutdown()
