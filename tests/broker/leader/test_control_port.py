"""A leader and a follower listening on a control port too (`--control-port`): every route on
both ports, so Skip's clients (control requests on one port, streams on the other) and the
proxy (one advertised URL) both reach them; the leader keeps both ports from standby to
leading."""

from __future__ import annotations

from contextlib import aclosing

import pytest
from redis.asyncio import Redis

from broker import Init, ServeConfig, SkiffClient, Update
from broker.cluster.locator import LeaderLocator
from broker.follower.node import follower_node
from broker.leader.node import leader_node
from broker.store.keyspace import Keyspace
from graph import Service
from tests.support.helpers import vote
from tests.support.leader_support import leader_config, leading
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(60)

CONFIG = ServeConfig(
    port=0, control_port=0, split_routes=False, heartbeat_s=0.2, shutdown_timeout_s=1
)


async def _has_url(locator: LeaderLocator) -> bool:
    found = await locator.leader()
    return found is not None and found.url is not None


async def test_every_route_on_both_ports(
    redis_url: str, redis_client: Redis, keyspace: Keyspace, service: Service
) -> None:
    async with leader_node(service, CONFIG, leader_config("lead-a"), redis_url=redis_url) as a:
        await leading(a)
        assert a.url != a.control_url
        # The follower forwards writes to the leader's advertised URL: wait until it is known.
        locator = LeaderLocator(redis_client, keyspace, cache_s=0)
        await eventually(lambda: _has_url(locator))
        async with follower_node(service, CONFIG, redis_url=redis_url, node_id="f-1") as f:
            assert f.url != f.control_url
            for node_url, control_url in ((a.url, a.control_url), (f.url, f.control_url)):
                assert node_url and control_url
                # Skip's layout: control requests on the control port, the stream on the other.
                async with (
                    SkiffClient(node_url, control_url=control_url) as skip_like,
                    SkiffClient(control_url) as control_only,
                ):
                    stream = await skip_like.create_stream("top", {"limit": 10})
                    async with aclosing(skip_like.events(stream)) as events:
                        first = await anext(events)
                        assert isinstance(first, Init)
                        version = await skip_like.patch("votes", [("c1", vote(3, "x"))])
                        update = await anext(events)
                        assert isinstance(update, Update) and update.version == version
                    # And everything on the control port alone.
                    again = await control_only.create_stream("top", {"limit": 10})
                    async with aclosing(control_only.events(again)) as events:
                        assert isinstance(await anext(events), Init)
                    await control_only.patch("votes", [("c1", [])])
