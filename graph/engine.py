"""Engine: owns the graph, applies write batches as all-or-nothing ticks, hosts instances."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from graph.changeset import Changeset, Entry, TickResult
from graph.collections import EagerCollection
from graph.context import Context
from graph.errors import (
    GraphError,
    InvalidWriteError,
    UnknownCollectionError,
    UserCodeError,
)
from graph.external import ExternalCollection, ExternalListener, Scope
from graph.externals import Externals
from graph.keys import unkey
from graph.nodes.lazy import LazyCollection
from graph.nodes.node import InputNode, Node, StoredNode
from graph.resources.instance import ResourceInstance
from graph.resources.registry import Instances
from graph.service import Service
from graph.tick import Tick
from graph.writes import Batch, check_batch, check_entries


class Engine:
    """Not thread-safe: call it from one thread (the event loop's)."""

    def __init__(
        self,
        service: Service,
        external_state: Mapping[str, Sequence[Any]] | None = None,
        listener: ExternalListener | None = None,
    ) -> None:
        self.service = service
        self.version = 0
        self.tick: Tick | None = None
        self.context = Context(self)
        self._node_ids = 0
        self._inputs: dict[str, InputNode] = {}
        self._shared: dict[str, Node] = {}
        self._handles: Mapping[str, EagerCollection] | None = None
        self._instances = Instances(service, self.context, self._shared_handles, lambda: self.tick)
        self.externals = Externals(
            self, service.external_services, self._instances.building, external_state
        )
        self.externals.listener = listener

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def for_service(
        cls,
        service: Service,
        external_state: Mapping[str, Sequence[Any]] | None = None,
        listener: ExternalListener | None = None,
    ) -> Engine:
        """A leader's (or single node's) engine: the inputs, then create_graph over them.
        `external_state`: the content of shared external collections by name (a leader rebuilt
        from a snapshot), given to each when create_graph opens it; `listener` hears of every
        external collection opened and closed, create_graph's included."""
        engine = cls(service, external_state, listener)
        for name, entries in service.inputs.items():
            node = engine._inputs[name] = InputNode(engine, name)
            for key, values in check_entries(name, entries):
                node.set(key, values)
        handles = {name: EagerCollection(node) for name, node in engine._inputs.items()}
        shared = service.create_graph(handles, engine.context) if service.create_graph else {}
        if not isinstance(shared, Mapping) or not all(
            isinstance(c, EagerCollection) for c in shared.values()
        ):
            raise GraphError("create_graph must return a dict of EagerCollection")
        engine._shared = {name: c.node for name, c in shared.items()}
        for shared_node in engine._shared.values():
            shared_node.tracked = True
        return engine

    @classmethod
    def mirror(cls, service: Service, names: Sequence[str]) -> Engine:
        """A follower's engine: the shared collections are its (empty) inputs."""
        engine = cls(service)
        for name in names:
            node = engine._inputs[name] = InputNode(engine, name)
            node.tracked = True
        engine._shared = dict(engine._inputs)
        return engine

    def register_node(self, node: Node) -> int:
        self._node_ids += 1
        self._instances.captured(node)
        return self._node_ids

    def register_lazy(self, lazy: LazyCollection) -> None:
        self._instances.captured(lazy)

    def register_reuse(self, node: Node) -> None:
        """A shared node was handed out again: the instance being built holds a reference
        (outside an instance, create_graph's reference is for good)."""
        self._instances.captured(node)

    def external_closed(self, collection: ExternalCollection) -> None:
        self.externals.closed(collection)

    def use_external(self, service: str, identifier: str, params: Any) -> ExternalCollection:
        return self.externals.use(service, identifier, params)

    def external_write(
        self, collection: ExternalCollection, entries: Sequence[Entry], is_init: bool
    ) -> dict[str, list[Entry]] | None:
        """The write batch making `collection` follow one update of its service (see
        Externals.update_entries): {} when it changes nothing, None when the collection is no
        longer this engine's (closed, or its engine was replaced)."""
        if self.externals.by_name.get(collection.name) is not collection:
            return None
        batch = self.externals.update_entries(collection.name, entries, is_init)
        return {collection.name: batch} if batch else {}

    def instances_using(self, collection: ExternalCollection) -> list[ResourceInstance]:
        """The live instances whose build holds `collection`."""
        return [inst for inst in self._instances.all() if collection in inst.nodes]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self._inputs)

    @property
    def shared_names(self) -> tuple[str, ...]:
        return tuple(self._shared)

    @property
    def durable_names(self) -> tuple[str, ...]:
        """What a leader's snapshot keeps of its own state: the inputs, and the shared external
        collections (their services are asked again after a failover; see docs/engine.md)."""
        return (*self._inputs, *self.externals.names("shared"))

    @property
    def instance_count(self) -> int:
        return len(self._instances)

    # -- writes --------------------------------------------------------------------------------
    def validate(self, writes: Mapping[str, Any]) -> dict[str, list[Entry]]:
        """Check a batch without applying it (UnknownCollectionError, InvalidWriteError,
        NotJsonError); returns it normalised (keys in their canonical form)."""
        return {
            name: [(unkey(key), values) for key, values in entries]
            for name, entries in check_batch(writes, self._inputs).items()
        }

    def _batch(self, writes: Mapping[str, Any]) -> Batch:
        # The service's own writes: its inputs, and its shared external collections (a leader
        # logs their updates like inputs; a rebuild replays them).
        return check_batch(writes, self._writable("shared"))

    def _writable(self, scope: Scope) -> dict[str, StoredNode]:
        externals = self.externals.by_name
        out: dict[str, StoredNode] = dict(self._inputs) if scope == "shared" else {}
        out.update((n, node) for n, node in externals.items() if node.scope == scope)
        return out

    def apply(self, writes: Mapping[str, Any], version: int | None = None) -> TickResult:
        """One tick: all of `writes` or, when user code raises, nothing."""
        return self._tick(self._batch(writes), version)

    def apply_local(self, writes: Mapping[str, Any]) -> TickResult:
        """One tick writing local external collections (those resource instances opened):
        the version does not move, since nothing replicated changes (graph/external.py)."""
        pending = self._begin(check_batch(writes, self._writable("local")), self.version)
        pending.commit()
        return pending.result

    def replace_all(self, state: Mapping[str, Any], version: int) -> TickResult:
        """One tick making every input equal to `state` (a follower's resync)."""
        batch = self._batch(state)
        for name, node in self._inputs.items():
            wanted = batch.setdefault(name, [])
            present = {k for k, _ in wanted}
            wanted.extend((k, []) for k in list(node.keys()) if k not in present)
        return self._tick(batch, version)

    def _tick(self, batch: Batch, version: int | None) -> TickResult:
        pending = self._begin(batch, version)
        pending.commit()
        return pending.result

    def begin(self, writes: Mapping[str, Any], version: int | None = None) -> PendingTick:
        """Compute a tick but hold it open: `commit()` keeps it, `abort()` undoes it exactly.

        A leader computes the tick, makes it durable in Redis, and only then commits; if Redis
        refuses (lost lease, outage) it aborts and the engine is as if the write never came.
        Until one of the two is called no other tick may start and no instance may be created.
        """
        return self._begin(self._batch(writes), version)

    def _begin(self, batch: Batch, version: int | None) -> PendingTick:
        if self.tick is not None:
            raise GraphError("a tick is already in progress")
        if version is not None and type(version) is not int:
            raise InvalidWriteError(f"a version is an int, got {version!r}")
        target = self.version + 1 if version is None else version
        local = all(
            name in self.externals.by_name and self.externals.by_name[name].scope == "local"
            for name in batch
        )
        if target <= self.version and not (local and target == self.version):
            raise InvalidWriteError(f"version {target} is not after {self.version}")
        tick = self.tick = Tick()
        try:
            for name, entries in batch.items():
                node: StoredNode | None = self._inputs.get(name)
                if node is None:  # (not `or`: an empty collection is falsy)
                    node = self.externals.by_name[name]
                for key, values in entries:
                    node.set(key, values)
            tick.run()
            rebuilt, failed = self._instances.rebuild_stale(tick)
        except BaseException as err:
            tick.abandon()
            tick.undo()
            self._end_tick(tick)
            if isinstance(err, GraphError | KeyboardInterrupt | SystemExit):
                raise
            raise UserCodeError(f"tick failed: {err!r}") from err
        result = self._result(tick, target, rebuilt, failed)
        return PendingTick(self, tick, result)

    def _commit(self, tick: Tick, version: int) -> None:
        self.version = version
        self._end_tick(tick)

    def _abort(self, tick: Tick) -> None:
        tick.undo()
        self._end_tick(tick)

    def _end_tick(self, tick: Tick) -> None:
        for node in tick.touched.values():
            node.tick_old = None
        self.tick = None
        self._instances.tick_ended()

    def _result(
        self,
        tick: Tick,
        version: int,
        rebuilt: Mapping[int, list[Entry]],
        failed: Mapping[int, str],
    ) -> TickResult:
        changed: dict[int, list[Entry]] = {}
        for node in tick.touched.values():
            entries = [(unkey(k), list(v)) for k, v in node.tick_changes()]
            if entries:
                changed[node.id] = entries
        shared = {
            name: tuple(changed[node.id])
            for name, node in self._shared.items()
            if node.id in changed
        }
        instances = self._instances.changed(changed)
        for inst_id in failed:
            instances.pop(inst_id, None)
        instances.update(rebuilt)
        return TickResult(version, Changeset(version, shared), instances, failed)

    # -- reads ---------------------------------------------------------------------------------
    def _collection(self, name: str) -> Node:
        # Not `a or b`: an empty collection is falsy (it has a __len__).
        node = self._shared.get(name)
        if node is None:
            node = self._inputs.get(name)
        if node is None:
            node = self.externals.by_name.get(name)
        if node is None:
            raise UnknownCollectionError(f"unknown collection {name!r}")
        return node

    def collection_entries(self, name: str) -> list[Entry]:
        node = self._collection(name)
        return [(unkey(k), list(node.get(k) or ())) for k in node.ordered_keys()]

    def collection_items(self, name: str) -> Iterator[Entry]:
        """Unordered entries (cheaper than collection_entries for snapshots)."""
        node = self._collection(name)
        for k in list(node.keys()):
            yield unkey(k), list(node.get(k) or ())

    def collection_size(self, name: str) -> int:
        return len(self._collection(name))

    # -- resource instances ----------------------------------------------------------------------
    def instantiate(
        self, resource: str, params: Any, claims: Mapping[str, Any] | None = None
    ) -> ResourceInstance:
        """The live instance of (resource, params), shared and refcounted (graph/resources/).
        `claims`: the verified identity claims of the request (None with auth off); instances
        whose build read claims are shared only by requests with the same values of what they
        read. Raises UnknownResourceError, ParamsRejectedError when the resource refuses, or
        ForbiddenError when it refuses this caller."""
        return self._instances.instantiate(resource, params, claims)

    def release(self, inst: ResourceInstance) -> None:
        self._instances.release(inst)

    def instances(self) -> list[ResourceInstance]:
        return self._instances.all()

    def _shared_handles(self) -> Mapping[str, EagerCollection]:
        # One read-only mapping for every instantiate: handles are immutable, and building
        # them per instance was a cost of every instance.
        handles = self._handles
        if handles is None:
            handles = self._handles = MappingProxyType(
                {name: EagerCollection(node) for name, node in self._shared.items()}
            )
        return handles


class PendingTick:
    """A computed tick awaiting `commit()` or `abort()` (see Engine.begin)."""

    __slots__ = ("_done", "_engine", "_tick", "result")

    def __init__(self, engine: Engine, tick: Tick, result: TickResult) -> None:
        self._engine = engine
        self._tick = tick
        self._done = False
        self.result = result

    def commit(self) -> None:
        self._finish()
        self._engine._commit(self._tick, self.result.version)

    def abort(self) -> None:
        self._finish()
        self._engine._abort(self._tick)

    def _finish(self) -> None:
        if self._done:
            raise GraphError("this tick was already committed or aborted")
        self._done = True
