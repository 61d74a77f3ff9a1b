"""Feeds: a node's subscriptions to external services, one per external collection its engine
opened (graph/external.py), and the writes their updates become.

The engine tells the feeds (its listener) when a collection opens or closes; it may do so from
the thread that builds it, before the node serves, so `opened` only records, and `start`
(called on the event loop, once the node can apply writes) subscribes. Each subscription runs in
a task of the node's Supervisor; its updates queue up and one drain task per feed applies them in
order through the node's `FeedSink` — a shared collection's as a versioned write of the service
(a leader makes it durable first), a local one's as a local tick. A subscription that cannot be
made fails the users of a local collection (their streams end with the reason) and is retried
with backoff for a shared one (the service's state cannot do without it). An update the node
cannot take now (UnavailableError: a leader between leases, Redis down) waits and is retried in
order; one it refuses (not JSON, user code raising on it) is dropped and counted.

A feed is *ready* once its first update is applied: snapshots, lookups and new streams of a
resource reading it wait for that (`until_loaded`), so nobody is served the empty collection
of a subscription still in flight. Adapters deliver a first update even when it is empty.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from broker.errors import ExternalLoadingError, ExternalResourceError, UnavailableError
from broker.runtime.backoff import Backoff
from broker.runtime.tasks import Supervisor
from broker.types import Entry
from graph import ExternalService
from graph.external import ExternalCollection

logger = logging.getLogger("skiff.broker")

State = Literal["subscribing", "loading", "ready", "failed"]


class FeedSink(Protocol):
    """How a node applies an external update (its role decides)."""

    async def external_update(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> None:
        """Make the collection follow one update. Raises UnavailableError when it cannot be
        applied now (retried), anything else when it never can (dropped)."""

    def external_failed(self, collection: ExternalCollection, reason: str) -> None:
        """The subscription of a local collection could not be made: fail its users."""


@dataclass(eq=False)
class Feed:
    """One subscription (its adapter knows it as `instance`)."""

    owner: Feeds = field(repr=False)
    collection: ExternalCollection
    instance: str
    state: State = "subscribing"
    reason: str = ""
    pending: list[tuple[Sequence[Entry], bool]] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    subscriber: asyncio.Task[None] | None = None
    drain: asyncio.Task[None] | None = None
    closed: bool = False

    # -- ExternalCallbacks ---------------------------------------------------------------------
    def update(self, entries: Sequence[Entry], is_init: bool) -> None:
        if not self.closed:
            self.pending.append((list(entries), is_init))
            self.owner.wake(self)

    def error(self, reason: object) -> None:
        if not self.closed:
            logger.warning("external resource %s: %s", self.instance, reason)
            self.owner.errors += 1

    def loading(self) -> None:
        # Only reported: readers keep being served the last content meanwhile (as in Skip).
        if not self.closed and self.state == "ready":
            self.state = "loading"


class Feeds:
    """The feeds of one node (the ExternalListener of its engines)."""

    def __init__(self, services: Mapping[str, ExternalService], tasks: Supervisor) -> None:
        self._services = services
        self._tasks = tasks
        self._sink: FeedSink | None = None
        self._feeds: dict[ExternalCollection, Feed] = {}
        self._names = itertools.count(1)
        #: Failures the subscriptions survived (adapters' `error` callbacks).
        self.errors = 0

    # -- ExternalListener ----------------------------------------------------------------------
    def opened(self, collection: ExternalCollection) -> None:
        feed = Feed(self, collection, f"{collection.name}#{next(self._names)}")
        self._feeds[collection] = feed
        if self._sink is not None:
            self._subscribe(feed)

    def closed(self, collection: ExternalCollection) -> None:
        feed = self._feeds.pop(collection, None)
        if feed is None:
            return
        feed.closed = True
        feed.settled.set()
        for task in (feed.subscriber, feed.drain):
            if task is not None:
                task.cancel()
        try:
            # Also when `subscribe` was cut short: the adapter may hold part of it already.
            self._service(feed).unsubscribe(feed.instance)
        except Exception as err:  # an adapter's failure must not stop the node
            logger.warning("unsubscribing %s failed: %r", feed.instance, err)

    # -- the node's side -----------------------------------------------------------------------
    def start(self, sink: FeedSink) -> None:
        """Subscribe everything opened so far, and from now on as soon as it opens."""
        self._sink = sink
        for feed in list(self._feeds.values()):
            if feed.subscriber is None:
                self._subscribe(feed)

    @property
    def configured(self) -> bool:
        """Whether the service has external services at all."""
        return bool(self._services)

    def states(self) -> dict[str, State]:
        return {f.collection.name: f.state for f in self._feeds.values()}

    def status(self) -> dict[str, object]:
        """For /healthz: how many subscriptions are in each state, the shared ones by name
        (a resource's own are many and short-lived), and the failures survived."""
        counts: dict[str, int] = {}
        shared: dict[str, str] = {}
        for feed in self._feeds.values():
            counts[feed.state] = counts.get(feed.state, 0) + 1
            if feed.collection.scope == "shared":
                shared[feed.collection.name] = feed.state
        return {"subscriptions": counts, "shared": shared, "errors": self.errors}

    async def until_loaded(self, collections: Sequence[object], timeout_s: float) -> None:
        """Wait until the feeds of `collections` delivered their content (the others are not
        external: ignored), and those of every shared collection: what a resource reads
        through the shared graph derives from them. Raises ExternalResourceError when one
        failed, ExternalLoadingError when one is still loading after `timeout_s`."""
        if not self._feeds:
            return  # the common case: nothing external is open (a stream creation's cost)
        feeds = [self._feeds[c] for c in collections if isinstance(c, ExternalCollection)
                 and c in self._feeds and c.scope == "local"]  # fmt: skip
        feeds += [f for f in self._feeds.values() if f.collection.scope == "shared"]
        waiting = [feed for feed in feeds if not feed.settled.is_set()]
        if waiting:
            try:
                async with asyncio.timeout(timeout_s):
                    for feed in waiting:
                        await feed.settled.wait()
            except TimeoutError as err:
                raise ExternalLoadingError("an external resource is still loading; retry") from err
        for feed in feeds:
            if feed.state == "failed":
                raise ExternalResourceError(f"external resource {feed.instance}: {feed.reason}")
            if feed.closed:
                # Its users went meanwhile (an idle instance released, a new engine).
                raise ExternalLoadingError(f"external resource {feed.instance} closed; retry")

    def forget(self, collections: Sequence[ExternalCollection]) -> None:
        """Close the feeds of collections whose engine was dropped whole (a follower moved to a
        new epoch's engine: its collections were never closed one by one)."""
        for collection in collections:
            self.closed(collection)

    def close(self) -> None:
        """Stop every subscription (the services stay up: see `shutdown_services`)."""
        for collection in list(self._feeds):
            self.closed(collection)

    # -- internals -----------------------------------------------------------------------------
    def _service(self, feed: Feed) -> ExternalService:
        return self._services[feed.collection.service]

    def _subscribe(self, feed: Feed) -> None:
        name = f"subscribe {feed.instance}"
        feed.subscriber = self._tasks.spawn(self._run_subscribe(feed), name=name)

    async def _run_subscribe(self, feed: Feed) -> None:
        collection = feed.collection
        backoff = Backoff(first=0.5, cap=30.0)
        while not feed.closed:
            try:
                await self._service(feed).subscribe(
                    feed.instance, collection.identifier, collection.params, feed
                )
            except Exception as err:  # an adapter's failure, reported below
                reason = str(err) or type(err).__name__
                logger.warning("cannot subscribe to %s: %s", feed.instance, reason)
                if collection.scope == "local":
                    feed.state, feed.reason = "failed", reason
                    feed.settled.set()
                    assert self._sink is not None
                    self._sink.external_failed(collection, reason)
                    return
                await asyncio.sleep(backoff.next())
                continue
            if feed.state == "subscribing":
                feed.state = "loading"
            return

    def wake(self, feed: Feed) -> None:
        if feed.drain is None or feed.drain.done():
            feed.drain = self._tasks.spawn(self._drain(feed), name=f"apply {feed.instance}")

    async def _drain(self, feed: Feed) -> None:
        sink = self._sink
        assert sink is not None
        backoff = Backoff(first=0.1, cap=5.0)
        while feed.pending and not feed.closed:
            entries, is_init = feed.pending[0]
            try:
                await sink.external_update(feed.collection, entries, is_init)
            except UnavailableError as err:
                logger.info("update of %s waits: %s", feed.instance, err)
                await asyncio.sleep(backoff.next())
                continue
            except Exception as err:  # an update the node refused: counted
                self.errors += 1
                logger.warning("update of %s dropped: %s", feed.instance, err)
            backoff.reset()
            del feed.pending[0]
            if feed.state != "failed":
                feed.state = "ready"
                feed.settled.set()


async def shutdown_services(services: Mapping[str, ExternalService]) -> None:
    """Shut every external service down (a node stopping; one failing does not stop the rest)."""
    for name, service in services.items():
        try:
            await service.shutdown()
        except Exception as err:  # logged; the node is stopping anyway
            logger.warning("external service %s: shutdown failed: %r", name, err)


__all__ = ["Feed", "FeedSink", "Feeds", "shutdown_services"]
