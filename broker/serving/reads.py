"""Reads of a resource that answer once (snapshot, lookup) and the first content of a new
stream: each waits until the external resources the instance reads delivered their content
(broker/external/feeds.py), so nobody is served the empty collection of a subscription still in
flight."""

from __future__ import annotations

from broker.errors import ExternalResourceError
from broker.serving.hub import Hub
from broker.types import Entry, Json
from graph import ResourceInstance


async def until_loaded(hub: Hub, handle: ResourceInstance) -> None:
    """Raises ExternalResourceError (a subscription failed) or ExternalLoadingError (still
    loading after ServeConfig.external_load_timeout_s)."""
    if hub.feeds is not None:
        await hub.feeds.until_loaded(handle.nodes, hub.config.external_load_timeout_s)


async def snapshot(hub: Hub, resource: str, params: Json) -> list[Entry]:
    engine = hub.engine
    handle = engine.instantiate(resource, params)
    try:
        await until_loaded(hub, handle)
        return handle.entries()
    finally:
        # A follower may have moved to a new epoch's engine meanwhile: the old one was dropped
        # whole, with this instance.
        if hub.engine is engine:
            engine.release(handle)


async def lookup(hub: Hub, resource: str, key: Json, params: Json) -> list[Json]:
    engine = hub.engine
    handle = engine.instantiate(resource, params)
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
