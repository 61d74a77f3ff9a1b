"""A resource whose instantiate read a collection follows that collection, over HTTP: the
issue's reproduction on a single node, and a resource that can no longer be built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from broker import (
    Init,
    RunningNode,
    ServeConfig,
    SkiffClient,
    StreamDisconnectedError,
    StreamNotFoundError,
    Update,
    running,
)
from graph import Context, EagerCollection, Service
from tests.support.reading_resource import Picked

pytestmark = pytest.mark.timeout(20)

RUN = "run-1"


def create(inputs: Mapping[str, EagerCollection], context: Context) -> dict[str, Any]:
    return dict(inputs)


SERVICE = Service(
    inputs={"input1": [(1, [1, 2])], "input2": [(1, [1])]},
    resources={"resource": Picked},
    create_graph=create,
)


@pytest.fixture
async def node() -> AsyncIterator[RunningNode]:
    async with running(SERVICE, ServeConfig(port=0, shutdown_timeout_s=1), run=RUN) as node:
        yield node


async def test_the_issue_reproduction(node: RunningNode) -> None:
    async with SkiffClient(node.url) as client:
        stream = await client.create_stream("resource", 1)
        events = client.events(stream, reconnect=False)
        assert await anext(events) == Init(RUN, 0, [(1, [1])])
        await client.patch("input1", [(1, [])])
        assert await anext(events) == Update(RUN, 1, [(1, [])])
        assert await client.snapshot("resource", 1) == []
        # The next client with the same params shares the rebuilt instance.
        other = client.events(await client.create_stream("resource", 1), reconnect=False)
        assert await anext(other) == Init(RUN, 1, [])
        await client.patch("input1", [(1, [1])])
        assert await anext(events) == Update(RUN, 2, [(1, [1])])
        assert await anext(other) == Update(RUN, 2, [(1, [1])])
        await events.aclose()
        await other.aclose()


async def test_a_resource_that_cannot_be_rebuilt_ends_its_streams(node: RunningNode) -> None:
    async with SkiffClient(node.url) as client:
        stream = await client.create_stream("resource", 1)
        events = client.events(stream, reconnect=False)
        assert await anext(events) == Init(RUN, 0, [(1, [1])])
        await client.patch("input1", [("fail", [True])])
        with pytest.raises(StreamDisconnectedError, match="input1 says fail"):
            await anext(events)
        with pytest.raises(StreamNotFoundError):
            await anext(client.events(stream, reconnect=False))
        # The write itself was applied; other resources and later writes carry on.
        assert await client.patch("input1", [("fail", [])]) == 2
        assert await client.snapshot("resource", 1) == [(1, [1])]
