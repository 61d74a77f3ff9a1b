"""Reads of a resource that answer once (snapshot, lookup) and the first content of a new
stream: each waits until the external resources the instance reads delivered their content
(broker/external/feeds.py), so nobody is served the empty collection of a subscription still in
flight."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

from broker.errors import ExternalResourceError
from broker.serving.hub import Hub
from broker.types import Entry, Json
from graph import ResourceInstance

#: How long a read waits for its node to apply the version it was asked to read after.
AFTER_VERSION_WAIT_S: Final = 2.0


async def after_version(hub: Hub, header: str | None) -> None:
    """Wait (briefly) until this node has applied the version in the proxy's
    `X-Skiff-After-Version` header: the newest write the proxy relayed, so a client reads its
    own write whichever follower answers. Followers trail the leader by milliseconds; past the
    bound the read answers with what the node has (reads are eventually consistent)."""
    if header is None or not header.isdigit():
        return
    version = int(header)
    if hub.engine.version >= version:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AFTER_VERSION_WAIT_S
    # Polled, like a resume's catch-up: only a read racing a write pays for it.
    while hub.engine.version < version and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.002)


async def until_loaded(hub: Hub, handle: ResourceInstance) -> None:
    """Raises ExternalResourceError (a subscription failed) or ExternalLoadingError (still
    loading after ServeConfig.external_load_timeout_s)."""
    if hub.feeds is not None:
        await hub.feeds.until_loaded(handle.nodes, hub.config.external_load_timeout_s)


async def snapshot(
    hub: Hub, resource: str, params: Json, claims: Mapping[str, Any] | None = None
) -> list[Entry]:
    engine = hub.engine
    handle = engine.instantiate(resource, params, claims)
    try:
        await until_loaded(hub, handle)
        return handle.entries()
    finally:
        # A follower may have moved to a new epoch's engine meanwhile: the old one was dropped
        # whole, with this instance.
        if hub.engine is engine:
            engine.release(handle)


async def lookup(
    hub: Hub, resource: str, key: Json, params: Json, claims: Mapping[str, Any] | None = None
) -> list[Json]:
    engine = hub.engine
    handle = engine.instantiate(resource, params, claims)
    try:
        await until_loaded(hub, handle)
        return handle.lookup(key)
    finally:
        if hub.engine is engine:
            engine.release(handle)


async def stream_loaded(hub: Hub, stream_id: str) -> None:
    """A new stream's instance has its external content; when it cannot have it, the stream is
    deleted and the error raised (the client gets the error, not a stream that never fills)."""
    handle = hub.instance_of(stream_id)
    if handle is None:
        raise ExternalResourceError(f"stream {stream_id!r} was dropped while loading")
    hub.hold_idle(handle, True)
    try:
        await until_loaded(hub, handle)
    except BaseException:
        if hub.has_stream(stream_id):
            hub.delete_stream(stream_id)
        raise
    finally:
        # The whole idle delay to connect starts now (or, failed, to release the instance).
        hub.hold_idle(handle, False)
