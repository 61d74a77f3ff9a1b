"""The ready-made adapters inside a serving node, end to end over real sockets: a skiff node
whose shared state follows another node's resource (SkipExternalService: service chaining) and
whose resource instances poll an HTTP API (PolledExternalService)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from typing import Any

import pytest

from broker import Init, ServeConfig, SkiffClient, running
from broker.external import PolledExternalService, PolledHTTPResource, SkipExternalService
from graph import Context, EagerCollection, Mapper, Resource, Service, Values
from tests.support.json_api import json_api
from tests.support.polling import eventually
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(30)

CONFIG = ServeConfig(port=0, shutdown_timeout_s=1, heartbeat_s=1, idle_instance_s=0.3)


class Doubled(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]:
        for value in values:
            yield key, value * 2


class Scores(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["doubled"]


class Weather(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return context.use_external_resource("weather", "now", {"city": self.params["city"]})


def by_city(data: Any) -> list[tuple[Any, list[Any]]]:
    return [(row["city"], [row["temp"]]) for row in data]


def downstream(upstream_url: str, api_url: str) -> Service:
    def create_graph(
        inputs: Mapping[str, EagerCollection], context: Context
    ) -> dict[str, EagerCollection]:
        scores = context.use_external_resource("upstream", "top", {"limit": 10})
        return {"doubled": scores.map(Doubled)}

    weather = PolledHTTPResource(url=f"{api_url}/now", interval_s=0.05, conv=by_city)
    return Service(
        name="downstream",
        inputs={},
        resources={"scores": Scores, "weather": Weather},
        create_graph=create_graph,
        external_services={
            "upstream": SkipExternalService(upstream_url, idle_timeout_s=5),
            "weather": PolledExternalService({"now": weather}),
        },
    )


async def test_a_node_follows_another_nodes_resource_and_polls_an_api() -> None:
    async with (
        json_api([{"city": "Oslo", "temp": 3}]) as api,
        running(make_service(), CONFIG) as upstream,
        SkiffClient(upstream.url) as up,
        running(downstream(upstream.url, api.url), CONFIG) as node,
        SkiffClient(node.url) as client,
    ):

        def doubled(entries: list[tuple[Any, list[Any]]]) -> list[tuple[Any, list[Any]]]:
            return [(key, [v * 2 for v in values]) for key, values in entries]

        expected = doubled(await up.snapshot("top", {"limit": 10}))
        assert expected  # the test service starts with votes
        await eventually(lambda: node.hub.engine.collection_entries("doubled") == expected)
        stream = await client.create_stream("scores")
        async with aclosing(client.events(stream)) as events:
            init = await anext(events)
            assert isinstance(init, Init) and init.entries == expected
            # A write upstream reaches this node's readers through the chained stream.
            await up.patch("votes", [("new", [{"post": 2, "user": "zed"}])])
            update = await anext(events)
            assert update.version == init.version + 1
            assert update.entries == doubled([(2, await up.lookup("top", 2, {"limit": 10}))])

        # A resource instance's own polled resource: fetched before the first read answers.
        assert await client.snapshot("weather", {"city": "Oslo"}) == [("Oslo", [3])]
        weather = await client.create_stream("weather", {"city": "Oslo"})
        async with aclosing(client.events(weather)) as events:
            assert (await anext(events)).entries == [("Oslo", [3])]
            api.body = [{"city": "Oslo", "temp": 5}]
            assert (await anext(events)).entries == [("Oslo", [5])]
        assert api.seen[-1].query == "city=Oslo"
        await client.delete_stream(weather)
        # Released with its instance: the polling stops.
        await eventually(lambda: node.hub.engine.externals.names("local") == (), within=5)
        polls = len(api.seen)
        await asyncio.sleep(0.3)  # six polling intervals
        assert len(api.seen) == polls
