"""HubSink: how a node applies the updates of its external resources (broker/external/feeds.py)
to the engine behind its hub.

A shared collection (opened by create_graph) is the service's state: on a single node its
update is an ordinary tick; a leader passes it to `write_shared`, which makes it durable in
Redis first like a client's write. A local collection (opened by a resource instance) is that
node's own: a local tick, which must not interleave with a tick a leader holds open while Redis
answers, hence `lock`. When user code raises on a local update, or its subscription cannot be
made, the instances reading it fail: their streams end with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from broker.serving.hub import Hub
from broker.types import Entry
from graph import GraphError
from graph.external import ExternalCollection

logger = logging.getLogger("skiff.broker")

#: A leader's durable write of a shared collection's update (Leadership.write_external).
WriteShared = Callable[[ExternalCollection, Sequence[Entry], bool], Awaitable[object]]


class HubSink:
    """broker.external.feeds.FeedSink over the hub `hub()` returns (None: not serving yet)."""

    def __init__(
        self,
        hub: Callable[[], Hub | None],
        *,
        write_shared: WriteShared | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._hub = hub
        self._write_shared = write_shared
        self._lock = lock

    async def external_update(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> None:
        if collection.scope == "shared":
            await self._shared(collection, entries, is_init)
            return
        async with self._lock or contextlib.nullcontext():
            hub = self._hub()
            if hub is None:
                return
            batch = hub.engine.external_write(collection, entries, is_init)
            if not batch:
                return  # closed meanwhile, or nothing changes
            try:
                hub.apply_local(batch)
            except GraphError as err:
                # The instances reading it would be stale from now on: they fail instead.
                hub.fail_external(collection, f"its update was refused: {err}")
                raise

    async def _shared(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> None:
        if self._write_shared is not None:
            await self._write_shared(collection, entries, is_init)
            return
        hub = self._hub()
        batch = None if hub is None else hub.engine.external_write(collection, entries, is_init)
        if hub is not None and batch:
            hub.apply(batch)

    def external_failed(self, collection: ExternalCollection, reason: str) -> None:
        hub = self._hub()
        if hub is not None:
            hub.fail_external(collection, reason)
