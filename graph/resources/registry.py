"""Instances: the live resource instances of an engine, shared per (resource, params) and
refcounted, and the nodes each one built.

`instantiate` runs the resource's user code with the engine capturing every node and lazy
collection created meanwhile; they belong to the instance and are freed with it (a shared take
or slice handed out again is captured too: the instance holds one of its references). Reads of
shared collections made meanwhile are tracked (instance_reads.py): when one changes, the
instance is built again inside the tick, and the tick reports the difference as its change.

A request may come with verified claims (graph/claims.py). An instance whose build read none is
shared by every request with its params, as before; one that read some is reused only by
requests whose claims give the same values (instance_keys.py). A rebuild runs with the
claims the instance was built with; if it comes to read a claim its first build did not, and
requests with other claims share it, it fails (its readers reconnect and get instances of their
own) rather than show one user's view to another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from graph.changeset import Entry
from graph.claims import ClaimReads, TrackedClaims, building_with
from graph.collections import EagerCollection
from graph.errors import (
    ForbiddenError,
    GraphError,
    NotJsonError,
    ParamsRejectedError,
    UnknownResourceError,
)
from graph.keys import check_json
from graph.nodes.lazy import LazyCollection
from graph.nodes.node import Node
from graph.resources.instance import ResourceInstance
from graph.resources.instance_keys import ClaimVariants, Key, index, reads_more, unindex
from graph.resources.instance_reads import (
    InstanceReads,
    content_before_tick,
    difference,
    reading_as,
)

if TYPE_CHECKING:
    from graph.context import Context
    from graph.service import Service
    from graph.tick import Tick

Owned = Node | LazyCollection
_Built = tuple[Node, list[Owned], InstanceReads | None, ClaimReads]


class Instances:
    """The instances of one engine. `tick` tells whether a tick is open (see Engine.begin)."""

    def __init__(
        self,
        service: Service,
        context: Context,
        handles: Callable[[], Mapping[str, EagerCollection]],
        tick: Callable[[], Tick | None],
    ) -> None:
        self._service = service
        self._context = context
        self._handles = handles
        self._tick = tick
        # Instances that read no claims directly (the common case: one dict lookup), those that
        # did as the variants of their (resource, params).
        self._live: dict[Key, ResourceInstance | ClaimVariants] = {}
        # output node id -> the instance it is the output of; when several instances share
        # one output node (see operators.SharedOperator), a dict of them used as a set.
        self._by_output: dict[int, ResourceInstance | dict[ResourceInstance, None]] = {}
        self._ids = 0
        self._count = 0
        self._capture: list[Owned] | None = None
        self._free_later: list[list[Owned]] = []
        # Instances whose reads changed in the open tick, in the order they did.
        self._stale: dict[ResourceInstance, None] = {}

    def __len__(self) -> int:
        return self._count

    def all(self) -> list[ResourceInstance]:
        out: list[ResourceInstance] = []
        for entry in self._live.values():
            if isinstance(entry, ResourceInstance):
                out.append(entry)
            else:
                out.extend(entry)
        return out

    def building(self) -> bool:
        """Whether an instance is being built (its user code runs)."""
        return self._capture is not None

    def captured(self, item: Owned) -> None:
        """A node or lazy collection was created (or a shared one handed out again): it
        belongs to the instance being built, if any."""
        if self._capture is not None:
            self._capture.append(item)

    # -- creating and freeing ----------------------------------------------------------------
    def instantiate(
        self, resource: str, params: Any, claims: Mapping[str, Any] | None = None
    ) -> ResourceInstance:
        """The instance of (resource, params) for a request with `claims` (None: auth is off,
        claims cannot matter): an existing one when sharing it cannot leak, else a new one."""
        cls = self._service.resources.get(resource)
        if cls is None:
            raise UnknownResourceError(f"unknown resource {resource!r}")
        try:
            check_json(params)
            canonical = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
        except (NotJsonError, TypeError) as err:
            raise ParamsRejectedError(f"params are not JSON: {err}") from err
        entry = self._live.get((resource, canonical))
        if entry is not None:
            existing = entry if isinstance(entry, ResourceInstance) else entry.find(claims)
            if existing is not None:
                existing.refs += 1
                if claims is not existing.claims and claims != existing.claims:
                    existing.mixed = True
                return existing
        if self._tick() is not None:
            raise GraphError("cannot instantiate a resource during a tick")
        output, captured, reads, claim_reads = self._build(resource, params, claims)
        self._ids += 1
        # orjson's result keeps its 4 KB output buffer: an exact-size copy, since every live
        # instance keeps its canonical params.
        canonical = bytes(memoryview(canonical))
        inst = ResourceInstance(id=self._ids, resource=resource, params=params,
                                canonical_params=canonical, output=output)  # fmt: skip
        if claims is not None:
            inst.claims, inst.claim_reads = claims, claim_reads
        self._adopt(inst, output, captured, reads)
        index(self._live, inst)
        self._count += 1
        return inst

    def release(self, inst: ResourceInstance) -> None:
        if inst.refs <= 0:
            raise GraphError(f"instance #{inst.id} ({inst.resource}) was already released")
        inst.refs -= 1
        if inst.refs > 0:
            return
        self._count -= 1
        unindex(self._live, inst, inst.claim_reads)
        self._unmap(inst)
        self._stale.pop(inst, None)
        if inst.reads is not None:
            inst.reads.instance = None
            inst.reads.drop(None)
        if self._tick() is not None:
            # A tick is open (see Engine.begin): its undo may still touch these nodes. Free
            # them once it is committed or aborted.
            self._free_later.append([*inst.nodes, *inst.lazies])
        else:
            free([*inst.nodes, *inst.lazies])

    def tick_ended(self) -> None:
        """Free what was released (or replaced by a rebuild) while a tick was open."""
        self._stale.clear()
        while self._free_later:
            free(self._free_later.pop())

    # -- rebuilding ----------------------------------------------------------------------------
    def stale(self, inst: ResourceInstance) -> None:
        """Something `inst`'s instantiate read has changed (called during a tick)."""
        self._stale[inst] = None

    def rebuild_stale(self, tick: Tick) -> tuple[dict[int, list[Entry]], dict[int, str]]:
        """Build every stale instance again, within `tick` (journaled: an undo restores the old
        build). Returns each rebuilt instance's change for its readers, and the instances whose
        resource failed to build again (id -> why; they keep their old build, no longer
        tracked: the caller drops them)."""
        changes: dict[int, list[Entry]] = {}
        failed: dict[int, str] = {}
        while self._stale:
            inst = next(iter(self._stale))
            del self._stale[inst]
            before = content_before_tick(inst.output)
            old = (inst.output, inst.nodes, inst.lazies, inst.reads, inst.claim_reads)
            assert inst.reads is not None
            inst.reads.instance = None
            inst.reads.drop(tick)
            try:
                output, captured, reads, claim_reads = self._build(
                    inst.resource, inst.params, inst.claims
                )
                if inst.mixed and reads_more(claim_reads, inst.claim_reads):
                    _discard(captured, reads)
                    raise ParamsRejectedError(
                        "its build now reads claims that not every reader shares; open it again"
                    )
            except (ParamsRejectedError, ForbiddenError) as err:
                failed[inst.id] = str(err)
                inst.reads = None
                tick.journal.append((self._restore, (inst, *old, None)))
                continue
            self._unmap(inst)
            self._adopt(inst, output, captured, reads)
            if claim_reads != inst.claim_reads:
                unindex(self._live, inst, inst.claim_reads)
                inst.claim_reads = claim_reads
                index(self._live, inst)
            retired: list[Owned] = [*old[1], *old[2]]
            self._free_later.append(retired)
            tick.journal.append((self._restore, (inst, *old, retired)))
            change = difference(before, inst.output)
            if change:
                changes[inst.id] = change
        return changes, failed

    def _restore(
        self,
        inst: ResourceInstance,
        output: Node,
        nodes: tuple[Node, ...],
        lazies: tuple[LazyCollection, ...],
        reads: InstanceReads | None,
        claim_reads: ClaimReads,
        retired: list[Owned] | None,
    ) -> None:
        """Undo of a rebuild (`retired`: the old build, None when the rebuild failed): the new
        build is freed and the old one put back in place, its reads tracked again."""
        if retired is not None:
            self._free_later.remove(retired)
            self._unmap(inst)
            free([*inst.nodes, *inst.lazies])
        if claim_reads != inst.claim_reads:
            unindex(self._live, inst, inst.claim_reads)
            inst.claim_reads = claim_reads
            index(self._live, inst)
        inst.output, inst.nodes, inst.lazies, inst.reads = output, nodes, lazies, reads
        if reads is not None:
            reads.instance = inst
        if retired is not None:
            self._map(inst)

    # -- a tick's changes --------------------------------------------------------------------
    def changed(self, by_node: Mapping[int, list[Entry]]) -> dict[int, list[Entry]]:
        """Instance id -> its changed entries, from the changed entries of each node."""
        by_output = self._by_output
        instances: dict[int, list[Entry]] = {}
        for node_id, entries in by_node.items():
            owner = by_output.get(node_id)
            if owner is None:
                continue
            if isinstance(owner, dict):
                for inst in owner:
                    instances[inst.id] = entries
            else:
                instances[owner.id] = entries
        return instances

    # -- internals -------------------------------------------------------------------------
    def _build(self, resource: str, params: Any, claims: Mapping[str, Any] | None) -> _Built:
        """Run the resource's code: its output, what it built, what it read of the shared
        collections and of the claims. A ForbiddenError of the resource's passes through."""
        cls = self._service.resources[resource]
        captured: list[Owned] = []
        reads = InstanceReads(self)
        view = None if claims is None else TrackedClaims(claims)
        self._capture = captured
        try:
            try:
                with building_with(view):
                    obj = cls(params)
            except ForbiddenError:
                raise
            except Exception as err:
                raise ParamsRejectedError(_reason(err)) from err
            try:
                with building_with(view), reading_as(reads):
                    out = obj.instantiate(self._handles(), self._context)
            except ForbiddenError:
                raise
            except Exception as err:
                raise ParamsRejectedError(_reason(err)) from err
            if not isinstance(out, EagerCollection):
                raise ParamsRejectedError(
                    f"resource {resource!r} did not return an EagerCollection"
                )
        except BaseException:
            self._capture = None
            reads.drop(None)
            free(captured)
            raise
        self._capture = None
        claim_reads = () if view is None else view.reads()
        return out.node, captured, None if reads.empty else reads, claim_reads

    def _adopt(
        self,
        inst: ResourceInstance,
        output: Node,
        captured: list[Owned],
        reads: InstanceReads | None,
    ) -> None:
        inst.output = output
        inst.nodes = tuple(n for n in captured if isinstance(n, Node))
        inst.lazies = tuple(n for n in captured if isinstance(n, LazyCollection))
        inst.reads = reads
        if reads is not None:
            reads.instance = inst
        output.tracked = True
        self._map(inst)

    def _map(self, inst: ResourceInstance) -> None:
        node_id = inst.output.id
        owner = self._by_output.get(node_id)
        if owner is None:
            self._by_output[node_id] = inst
        elif isinstance(owner, dict):
            owner[inst] = None
        else:
            self._by_output[node_id] = {owner: None, inst: None}

    def _unmap(self, inst: ResourceInstance) -> None:
        node_id = inst.output.id
        owner = self._by_output.get(node_id)
        if owner is inst:
            del self._by_output[node_id]
        elif isinstance(owner, dict):
            owner.pop(inst, None)
            if len(owner) == 1:
                self._by_output[node_id] = next(iter(owner))


def _discard(captured: list[Owned], reads: InstanceReads | None) -> None:
    """Drop a build that will not be used (as _build does when user code raises)."""
    if reads is not None:
        reads.drop(None)
    free(captured)


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


def free(items: Sequence[Owned]) -> None:
    # Newest first: a node is freed before the nodes it was built from.
    for item in reversed(items):
        item.detach()
