"""Hub: stream ids, the resource instances behind them, and the fan-out of each tick.

A stream id (from `POST /v1/streams`) names one subscription to a shared resource instance; a
`GET` attaches a connected reader to it (a newer GET of the same id replaces the older reader).
The hub holds exactly one engine reference per instance, however many streams share it, and
releases it once the instance has had no connected reader for `idle_instance_s` (creating a
stream restarts that clock). Its stream ids expire with it: a reconnect after the idle delay
gets a 404 and must create a new stream.

Each tick's update is encoded once per instance and the same bytes are queued for every reader.
The instance also keeps the last `history_versions` (version, changes) pairs, so a reader coming
back with `Last-Event-ID: <run>/<v>` gets one update with the net change since `v`.

Everything here is synchronous and runs on the event loop's thread, like the engine: between
reading an instance's content for an init and registering the reader no tick can slip in.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.changes import merge_changes
from broker.config import ServeConfig
from broker.errors import DrainingError, UnknownStreamError
from broker.sse import check_run_id, encode_event, parse_event_id
from broker.subscription import Subscription
from graph import Engine, ResourceInstance, TickResult

Json = Any
Entry = tuple[Json, list[Json]]


@dataclass(eq=False, slots=True)
class _Instance:
    handle: ResourceInstance
    # Changes are known for every version after `floor`: a resume from v >= floor is exact.
    floor: int
    history: deque[tuple[int, list[Entry]]]
    streams: set[str] = field(default_factory=set)
    readers: set[Subscription] = field(default_factory=set)
    init_cache: tuple[int, bytes] | None = None
    idle_timer: asyncio.TimerHandle | None = None


@dataclass(eq=False, slots=True)
class _Stream:
    instance: _Instance
    reader: Subscription | None = None


class Hub:
    def __init__(self, engine: Engine, *, run: str, config: ServeConfig) -> None:
        self._engine = engine
        self._run = check_run_id(run)
        self._config = config
        self._instances: dict[int, _Instance] = {}
        self._streams: dict[str, _Stream] = {}
        self._draining = False

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def config(self) -> ServeConfig:
        return self._config

    @property
    def run(self) -> str:
        return self._run

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    @property
    def instance_count(self) -> int:
        return len(self._instances)

    @property
    def reader_count(self) -> int:
        return sum(len(state.readers) for state in self._instances.values())

    # -- writes ------------------------------------------------------------------------------
    def apply(self, writes: Mapping[str, Any]) -> TickResult:
        """Apply a write batch and fan its changes out before returning."""
        result = self._engine.apply(writes)
        self.publish(result)
        return result

    def publish(self, result: TickResult) -> None:
        """Record one tick's instance changes and queue them for every connected reader."""
        run = self._run
        for instance_id, entries in result.instances.items():
            state = self._instances.get(instance_id)
            if state is None:
                continue
            history = state.history
            if history.maxlen is not None and len(history) == history.maxlen:
                state.floor = history[0][0] if history else result.version
            history.append((result.version, entries))
            if not state.readers:
                continue
            data = encode_event("update", run, result.version, entries)
            for reader in list(state.readers):
                if not reader.push(result.version, entries, data):
                    reader.close("lagging")
                    self._detach(reader)

    # -- streams -----------------------------------------------------------------------------
    def create_stream(self, resource: str, params: Json) -> str:
        """A new stream id on the (shared) instance of `(resource, params)`.

        Raises the engine's UnknownResourceError / ParamsRejectedError, or DrainingError.
        """
        if self._draining:
            raise DrainingError("the node is shutting down")
        handle = self._engine.instantiate(resource, params)
        state = self._instances.get(handle.id)
        if state is None:
            state = _Instance(
                handle=handle,
                floor=self._engine.version,
                history=deque(maxlen=self._config.history_versions),
            )
            self._instances[handle.id] = state
        else:
            self._engine.release(handle)
        # A uuid4 carries 122 random bits: stream ids are capabilities, not guessable names.
        stream_id = str(uuid.uuid4())
        state.streams.add(stream_id)
        self._streams[stream_id] = _Stream(instance=state)
        if not state.readers:
            # A fresh stream deserves the whole idle delay to connect.
            self._arm_idle(state)
        return stream_id

    def delete_stream(self, stream_id: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            raise UnknownStreamError(f"unknown stream {stream_id!r}")
        stream.instance.streams.discard(stream_id)
        if stream.reader is not None:
            stream.reader.close("deleted")
            self._detach(stream.reader)

    def disconnect(self, stream_id: str, reason: str = "disconnected") -> bool:
        """End the connected reader of a stream, keeping the stream (it may resume)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.reader is None:
            return False
        reader = stream.reader
        reader.close(reason)
        self._detach(reader)
        return True

    def has_stream(self, stream_id: str) -> bool:
        return stream_id in self._streams

    def subscribe(self, stream_id: str, last_event_id: str | None = None) -> Subscription:
        """Attach a reader to a stream; its first chunk is an init or, on resume, an update."""
        if self._draining:
            raise DrainingError("the node is shutting down")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStreamError(f"unknown stream {stream_id!r}")
        if stream.reader is not None:
            # A reconnect can arrive before the server noticed the old connection died.
            stream.reader.close("replaced")
            self._detach(stream.reader)
        state = stream.instance
        reader = Subscription(
            stream_id,
            state.handle.id,
            self._first_event(state, last_event_id),
            run=self._run,
            max_pending=self._config.max_pending_updates,
            max_lag=self._config.max_lag_updates,
        )
        stream.reader = reader
        state.readers.add(reader)
        self._disarm_idle(state)
        return reader

    def unsubscribe(self, reader: Subscription) -> None:
        """The reader's connection ended (idempotent)."""
        reader.close("disconnected")
        self._detach(reader)

    def _first_event(self, state: _Instance, last_event_id: str | None) -> bytes:
        version = self._engine.version
        since = parse_event_id(last_event_id) if last_event_id is not None else None
        if since is not None and since[0] == self._run and state.floor <= since[1] <= version:
            changes = merge_changes(e for v, e in state.history if v > since[1])
            return encode_event("update", self._run, version, changes)
        cached = state.init_cache
        if cached is None or cached[0] != version:
            # Readers connecting at the same version share one encoded init.
            cached = (version, encode_event("init", self._run, version, state.handle.entries()))
            state.init_cache = cached
        return cached[1]

    def _detach(self, reader: Subscription) -> None:
        stream = self._streams.get(reader.stream_id)
        if stream is not None and stream.reader is reader:
            stream.reader = None
        state = self._instances.get(reader.instance_id)
        if state is not None and reader in state.readers:
            state.readers.discard(reader)
            if not state.readers:
                self._arm_idle(state)

    # -- instance lifetime -------------------------------------------------------------------
    def _arm_idle(self, state: _Instance) -> None:
        self._disarm_idle(state)
        if self._draining:
            # Shutting down: close() releases everything, no clock needed.
            return
        loop = asyncio.get_running_loop()
        state.idle_timer = loop.call_later(self._config.idle_instance_s, self._expire, state)

    @staticmethod
    def _disarm_idle(state: _Instance) -> None:
        if state.idle_timer is not None:
            state.idle_timer.cancel()
            state.idle_timer = None

    def _expire(self, state: _Instance) -> None:
        state.idle_timer = None
        if state.readers or self._instances.get(state.handle.id) is not state:
            return
        self._drop(state)

    def _drop(self, state: _Instance) -> None:
        self._disarm_idle(state)
        for stream_id in state.streams:
            self._streams.pop(stream_id, None)
        state.streams.clear()
        del self._instances[state.handle.id]
        self._engine.release(state.handle)

    # -- reads -------------------------------------------------------------------------------
    def snapshot(self, resource: str, params: Json) -> list[Entry]:
        handle = self._engine.instantiate(resource, params)
        try:
            return handle.entries()
        finally:
            self._engine.release(handle)

    def lookup(self, resource: str, key: Json, params: Json) -> list[Json]:
        handle = self._engine.instantiate(resource, params)
        try:
            return handle.lookup(key)
        finally:
            self._engine.release(handle)

    # -- shutdown ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Refuse new streams and readers, and end every connected reader."""
        self._draining = True
        for state in self._instances.values():
            for reader in list(state.readers):
                reader.close("shutdown")
                self._detach(reader)

    def close(self) -> None:
        """Drain, then release every instance; the hub is unusable afterwards."""
        self.drain()
        for state in list(self._instances.values()):
            self._drop(state)
