"""Hub: stream ids, the resource instances behind them, and the fan-out of each tick.

A stream id (from `POST /v1/streams`) names one subscription to a shared resource instance; a
`GET` attaches a connected reader to it (a newer GET of the same id replaces the older reader).
The hub holds exactly one engine reference per instance, however many streams share it, and
releases it once the instance has had no connected reader for `idle_instance_s` (creating a
stream restarts that clock). Its stream ids expire with it: a reconnect after the idle delay
gets a 404 and must create a new stream.

Each tick's update is encoded once per instance and the same bytes are queued for every reader.
The instance also keeps the last `history_versions` (version, changes) pairs, so a reader coming
back with `Last-Event-ID: <run>/<v>` gets one update with the net change since `v`. A new run
(`reset_run`: a new replication epoch) drops that history and re-inits every connected reader.

With identity tokens on, a stream belongs to the subject that created it (`owner`; None when
created anonymously, or with auth off), its instance is built with that caller's claims, and a
reader whose token expires is ended at that moment with an error event saying so: it reconnects
with a fresh token (docs/security.md). The endpoints decide who may read what
(broker/http/access.py); the hub records and enforces the time.

Everything here is synchronous and runs on the event loop's thread, like the engine: between
reading an instance's content for an init and registering the reader no tick can slip in.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from broker.errors import (
    DrainingError,
    OverloadedError,
    StreamIdConflictError,
    UnknownStreamError,
)
from broker.external.feeds import Feeds
from broker.http.sse import check_run_id, encode_error, encode_event
from broker.serving.config import ServeConfig
from broker.serving.streams.deadlines import ReaderDeadlines
from broker.serving.streams.heartbeats import Heartbeats
from broker.serving.streams.instance_state import InstanceState, rebind_all
from broker.serving.streams.stream_table import StreamTable
from broker.serving.streams.subscription import Subscription
from broker.types import Json
from graph import Engine, ResourceInstance, TickResult
from graph.external import ExternalCollection

logger = logging.getLogger("skiff.broker")


class Hub:
    def __init__(
        self, engine: Engine, *, run: str, config: ServeConfig, feeds: Feeds | None = None
    ) -> None:
        self._engine = engine
        self._run = check_run_id(run)
        self._config = config
        #: The subscriptions of the engine's external collections (none: the service has no
        #: external services, or the engine opens none).
        self.feeds = feeds
        self._instances: dict[int, InstanceState] = {}
        self._streams = StreamTable()
        self._draining = False
        self._beats = Heartbeats(config.heartbeat_s, self._all_readers)
        self._deadlines = ReaderDeadlines(self._token_expired)

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

    def _all_readers(self) -> Iterator[Subscription]:
        for state in self._instances.values():
            yield from state.readers

    # -- writes ------------------------------------------------------------------------------
    def apply(self, writes: Mapping[str, Any]) -> TickResult:
        """Apply a write batch and fan its changes out before returning."""
        result = self._engine.apply(writes)
        self.publish(result)
        return result

    def apply_local(self, writes: Mapping[str, Any]) -> TickResult:
        """Apply a local tick (external collections of resource instances: the version stays)
        and fan its changes out before returning."""
        result = self._engine.apply_local(writes)
        self.publish(result, local=True)
        return result

    def publish(self, result: TickResult, *, local: bool = False) -> None:
        """Record one tick's instance changes and queue them for every connected reader."""
        run = self._run
        for instance_id, entries in result.instances.items():
            state = self._instances.get(instance_id)
            if state is None:
                continue
            state.record(result.version, entries, local=local)
            if not state.readers:
                continue
            data = encode_event("update", run, result.version, entries)
            for reader in list(state.readers):
                if not reader.push(result.version, entries, data):
                    reader.close("lagging")
                    self._detach(reader)
        for instance_id, why in result.failed.items():
            self._fail(instance_id, why)

    def fail_external(self, collection: ExternalCollection, why: str) -> None:
        """An external resource of this engine failed: every instance reading it fails."""
        for handle in self._engine.instances_using(collection):
            self._fail(handle.id, f"external resource {collection.identifier}: {why}")

    def _fail(self, instance_id: int, why: str) -> None:
        """The instance's resource could not be built again on the new state: its readers are
        told so and the instance goes with its stream ids (a new stream may build it anew)."""
        state = self._instances.get(instance_id)
        if state is None:
            return
        logger.warning("resource %s failed: %s", state.handle.resource, why)
        state.close_readers("failed", encode_error(f"resource failed: {why}"))
        self._drop(state)

    # -- streams -----------------------------------------------------------------------------
    def create_stream(
        self,
        resource: str,
        params: Json,
        *,
        stream_id: str | None = None,
        owner: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A new stream id on the (shared) instance of `(resource, params)`, for a caller with
        `claims` (None: auth off) whose subject `owner` the stream belongs to.

        `stream_id` creates the stream under that id instead of a fresh one (the proxy re-homing
        a stream from a node that is gone); asking again for an id this hub already holds on the
        same instance returns it unchanged, so the call is idempotent.

        Raises the engine's UnknownResourceError / ParamsRejectedError / ForbiddenError,
        DrainingError, or StreamIdConflictError when `stream_id` names a stream of another
        instance or owner.
        """
        if self._draining:
            raise DrainingError("the node is shutting down")
        handle = self._engine.instantiate(resource, params, claims)
        if stream_id is not None and (existing := self._streams.get(stream_id)) is not None:
            # instantiate() took a reference the existing stream already holds.
            self._engine.release(handle)
            if existing.instance.handle.id != handle.id or existing.owner != owner:
                raise StreamIdConflictError(f"stream {stream_id!r} exists on another instance")
            if not existing.instance.readers:
                self._arm_idle(existing.instance)
            return stream_id
        state = self._instances.get(handle.id)
        full = len(self._streams) >= self._config.max_streams or (
            state is not None and len(state.streams) >= self._config.max_streams_per_instance
        )
        if full:
            self._engine.release(handle)
            raise OverloadedError("too many streams on this node or resource instance; retry later")
        if state is None:
            state = InstanceState.new(handle, self._engine.version, self._config.history_versions)
            self._instances[handle.id] = state
        else:
            self._engine.release(handle)
        if stream_id is None:
            # A uuid4 carries 122 random bits: stream ids are capabilities, not guessable names.
            stream_id = str(uuid.uuid4())
        self._streams.add(stream_id, state, owner)
        if not state.readers:
            # A fresh stream deserves the whole idle delay to connect.
            self._arm_idle(state)
        return stream_id

    def delete_stream(self, stream_id: str) -> None:
        stream = self._streams.remove(stream_id)
        if stream is None:
            raise UnknownStreamError(f"unknown stream {stream_id!r}")
        reader = stream.reader
        if reader is not None:
            reader.close("deleted")
            self._detach(reader)

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

    def owner_of(self, stream_id: str) -> str | None:
        """The owner of a stream (None: unowned, or no such stream)."""
        return self._streams.owner_of(stream_id)

    def subscribe(
        self, stream_id: str, last_event_id: str | None = None, *, until: float | None = None
    ) -> Subscription:
        """Attach a reader to a stream; its first chunk is an init or, on resume, an update.
        `until` (seconds since the epoch): when the reader's token stops being valid; the
        reader is ended then."""
        if self._draining:
            raise DrainingError("the node is shutting down")
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStreamError(f"unknown stream {stream_id!r}")
        old = stream.reader
        if old is not None:
            # A reconnect can arrive before the server noticed the old connection died.
            old.close("replaced")
            self._detach(old)
        state = stream.instance
        reader = Subscription(
            stream_id,
            state.handle.id,
            state.first_event(self._run, self._engine.version, last_event_id),
            run=self._run,
            max_pending=self._config.max_pending_updates,
            max_lag=self._config.max_lag_updates,
        )
        stream.reader = reader
        state.readers.add(reader)
        state.disarm_idle()
        self._beats.arm()
        if until is not None:
            self._deadlines.arm(reader, until)
        return reader

    def _token_expired(self, reader: Subscription) -> None:
        reader.close("token expired", encode_error("token expired: reconnect with a fresh token"))
        self._detach(reader)

    def unsubscribe(self, reader: Subscription) -> None:
        """The reader's connection ended (idempotent)."""
        reader.close("disconnected")
        self._detach(reader)

    def _detach(self, reader: Subscription) -> None:
        self._deadlines.cancel(reader)
        self._streams.detach(reader)
        state = self._instances.get(reader.instance_id)
        if state is not None and reader in state.readers:
            state.readers.discard(reader)
            if not state.readers:
                self._arm_idle(state)

    # -- run changes -------------------------------------------------------------------------
    def reset_run(self, run: str, engine: Engine | None = None) -> None:
        """Begin run `run` (a new replication epoch): resume history is dropped, since versions
        of the old run mean nothing in the new one, and every connected reader is sent a fresh
        init under `run` in place of whatever it had pending; its connection stays open.

        With `engine` the hub moves to it (a follower resynced into a new epoch): each live
        instance is recreated there from its resource and params, keeping its stream ids; one
        the new engine rejects is dropped with its streams (its readers are closed).
        """
        self._run = check_run_id(run)
        if engine is not None and engine is not self._engine:
            self._move_instances(engine)
        for state in self._instances.values():
            state.restart(self._run, self._engine.version)

    def drop_instances(self, reason: str) -> None:
        """Release every instance, ending its readers and forgetting its stream ids (a follower
        whose resources' user code cannot take a published change: replication comes first)."""
        for state in list(self._instances.values()):
            state.close_readers(reason)
            self._drop(state)

    def _move_instances(self, engine: Engine) -> None:
        # The old engine and its instances are dropped whole; nothing to release one by one,
        # but its external collections' subscriptions must end.
        if self.feeds is not None:
            self.feeds.forget(list(self._engine.externals.by_name.values()))
        self._engine = engine
        self._instances, gone = rebind_all(self._instances.values(), engine)
        for state in gone:
            self._streams.forget(state)

    # -- instance lifetime -------------------------------------------------------------------
    def hold_idle(self, handle: ResourceInstance, held: bool) -> None:
        """Stop (`held`) or restart the idle clock of an instance nobody reads yet: a new
        stream's instance must not expire while its external content loads."""
        state = self._instances.get(handle.id)
        if state is None or state.handle is not handle or state.readers:
            return
        if held:
            state.disarm_idle()
        else:
            self._arm_idle(state)

    def _arm_idle(self, state: InstanceState) -> None:
        if self._draining:
            # Shutting down: close() releases everything, no clock needed.
            state.disarm_idle()
        else:
            state.arm_idle(self._config.idle_instance_s, self._expire)

    def _expire(self, state: InstanceState) -> None:
        if not state.readers and self._instances.get(state.handle.id) is state:
            self._drop(state)

    def _drop(self, state: InstanceState) -> None:
        state.disarm_idle()
        self._streams.forget(state)
        del self._instances[state.handle.id]
        self._engine.release(state.handle)

    # -- reads (broker/serving/reads.py) -------------------------------------------------------
    def instance_of(self, stream_id: str) -> ResourceInstance | None:
        return self._streams.instance_of(stream_id)

    # -- shutdown ----------------------------------------------------------------------------
    def stop_intake(self) -> None:
        """Refuse new streams and readers (503); connected readers carry on until ended one by
        one (broker.serving.drain spreads that over a window) or by `drain()`."""
        self._draining = True

    def connected_stream_ids(self) -> list[str]:
        """The streams that have a connected reader right now."""
        return self._streams.connected()

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
        self._beats.stop()
        for state in list(self._instances.values()):
            self._drop(state)
