"""A resume ahead of the node (a client re-homed to a follower that lags by a few versions)
waits for the node to catch up and gets an update, not an init from its past."""

from __future__ import annotations

import asyncio

import pytest

from broker import ServeConfig, SkiffClient, Update, running
from tests.support.helpers import vote
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(10)


async def test_resume_waits_for_the_version_the_client_saw() -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1)
    async with running(make_service(), config, run="r1") as node, SkiffClient(node.url) as client:
        stream_id = await client.create_stream("top", {"limit": 3})
        # The client saw version 2 elsewhere; this node is still at 0 and applies 1, 2 shortly.

        async def lagging_writes() -> None:
            await asyncio.sleep(0.1)
            node.hub.apply({"votes": [("v3", vote(3, "x"))]})
            await asyncio.sleep(0.05)
            node.hub.apply({"votes": [("v4", vote(3, "y"))]})

        writes = asyncio.create_task(lagging_writes())
        events = client.events(stream_id, last_event_id="r1/2", reconnect=False)
        first = await anext(events)
        await writes
        # History since version 2 holds nothing newer: an empty update at version 2.
        assert first == Update("r1", 2, [])
        await events.aclose()


async def test_resume_of_another_run_is_an_init_at_once() -> None:
    config = ServeConfig(port=0, shutdown_timeout_s=1)
    async with running(make_service(), config, run="r1") as node, SkiffClient(node.url) as client:
        stream_id = await client.create_stream("top", {"limit": 1})
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = client.events(stream_id, last_event_id="old-run/99", reconnect=False)
        first = await anext(events)
        assert type(first).__name__ == "Init" and loop.time() - started < 1
        await events.aclose()
