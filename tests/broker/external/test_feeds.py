"""Feeds on their own: subscriptions started once the node can apply, updates applied in order
through the sink, retried while the node cannot take them, dropped (and counted) when it never
will; a shared subscription that fails is tried again, a local one fails its users."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from broker.errors import ExternalLoadingError, ExternalResourceError, UnavailableError
from broker.external.feeds import Feeds
from broker.runtime.tasks import Supervisor
from broker.types import Entry
from graph import Engine
from graph.external import ExternalCollection
from tests.support.external_services import Shop, make_shop_service
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(30)


class Sink:
    """A FeedSink recording what it is given; `refuse` makes the next calls raise."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, list[Entry], bool]] = []
        self.failed: list[tuple[str, str]] = []
        self.refuse: list[Exception] = []

    async def external_update(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> None:
        if self.refuse:
            raise self.refuse.pop(0)
        self.applied.append((collection.identifier, list(entries), is_init))

    def external_failed(self, collection: ExternalCollection, reason: str) -> None:
        self.failed.append((collection.identifier, reason))


async def started(shop: Shop) -> tuple[Feeds, Sink, Engine, Supervisor]:
    tasks = Supervisor("test")
    feeds = Feeds({"shop": shop}, tasks)
    engine = Engine.for_service(make_shop_service(shop), listener=feeds)
    sink = Sink()
    # Opened before the node could apply anything: nothing subscribed until start.
    assert shop.subscribed == []
    feeds.start(sink)
    return feeds, sink, engine, tasks


async def test_updates_arrive_in_order_and_unavailable_ones_wait() -> None:
    shop = Shop()
    shop.set("catalog", "a", [1])
    feeds, sink, engine, tasks = await started(shop)
    async with tasks:
        await eventually(lambda: sink.applied == [("catalog", [("a", [1])], True)])
        (catalog,) = engine.externals.by_name.values()
        assert feeds.states() == {catalog.name: "ready"}
        sink.refuse.append(UnavailableError("between leases"))
        shop.set("catalog", "b", [2])
        shop.set("catalog", "a", [])
        await eventually(lambda: len(sink.applied) == 3)
        assert sink.applied[1:] == [
            ("catalog", [("b", [2])], False), ("catalog", [("a", [])], False),
        ]  # fmt: skip
        # Refused for good: dropped, counted, and the next one still applies.
        sink.refuse.append(ValueError("not JSON"))
        shop.set("catalog", "c", [3])
        shop.set("catalog", "d", [4])
        await eventually(lambda: len(sink.applied) == 4)
        assert sink.applied[-1] == ("catalog", [("d", [4])], False) and feeds.errors == 1
        feeds.close()
        assert shop.live == {} and len(shop.unsubscribed) == 1


async def test_a_shared_subscription_that_fails_is_tried_again() -> None:
    shop = Shop()
    shop.fail.add("catalog")
    shop.set("catalog", "a", [1])
    feeds, sink, _, tasks = await started(shop)
    async with tasks:
        await eventually(lambda: len(shop.subscribed) >= 2, within=5)
        assert sink.applied == [] and sink.failed == []
        shop.fail.clear()
        await eventually(lambda: sink.applied == [("catalog", [("a", [1])], True)], within=5)
        feeds.close()


async def test_a_local_subscription_that_fails_fails_its_users() -> None:
    shop = Shop()
    shop.fail.add("stock")
    feeds, sink, engine, tasks = await started(shop)
    async with tasks:
        handle = engine.instantiate("stock", {"store": "north"})
        with pytest.raises(ExternalResourceError, match="the shop has no stock today"):
            await feeds.until_loaded(handle.nodes, timeout_s=5)
        assert [identifier for identifier, _ in sink.failed] == ["stock"]
        assert shop.subscribed.count(("stock", {"store": "north"})) == 1
        engine.release(handle)
        feeds.close()


async def test_until_loaded_waits_then_times_out() -> None:
    shop = Shop()
    shop.hold()
    feeds, _, engine, tasks = await started(shop)
    async with tasks:
        handle = engine.instantiate("stock", {"store": "north"})
        with pytest.raises(ExternalLoadingError):
            await feeds.until_loaded(handle.nodes, timeout_s=0.2)
        waiting = asyncio.create_task(feeds.until_loaded(handle.nodes, timeout_s=5))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        shop.release()
        await waiting
        # Collections that are not external (or not open) are not waited for.
        await feeds.until_loaded([object()], timeout_s=0.01)
        engine.release(handle)
        assert shop.live_count("stock") == 0
        feeds.close()


async def test_an_engine_dropped_whole_has_its_feeds_forgotten() -> None:
    shop = Shop()
    feeds, _, engine, tasks = await started(shop)
    async with tasks:
        engine.instantiate("stock", {"store": "north"})
        await eventually(lambda: shop.live_count("stock") == 1)
        opened: list[Any] = list(engine.externals.by_name.values())
        feeds.forget(opened)
        assert shop.live == {} and feeds.states() == {}
