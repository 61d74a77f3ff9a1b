"""Instances: the live resource instances of an engine, shared per (resource, params) and
refcounted, and the nodes each one built.

`instantiate` runs the resource's user code with the engine capturing every node and lazy
collection created meanwhile; they belong to the instance and are freed with it (a shared take
or slice handed out again is captured too: the instance holds one of its references).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from graph.changeset import Entry
from graph.collections import EagerCollection
from graph.errors import GraphError, NotJsonError, ParamsRejectedError, UnknownResourceError
from graph.instance import ResourceInstance
from graph.keys import check_json
from graph.lazy import LazyCollection
from graph.node import Node

if TYPE_CHECKING:
    from graph.context import Context
    from graph.service import Service
    from graph.tick import Tick

Owned = Node | LazyCollection


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
        self._live: dict[tuple[str, bytes], ResourceInstance] = {}
        # output node id -> the instance it is the output of; when several instances share
        # one output node (see operators.SharedOperator), a dict of them used as a set.
        self._by_output: dict[int, ResourceInstance | dict[ResourceInstance, None]] = {}
        self._ids = 0
        self._capture: list[Owned] | None = None
        self._free_later: list[list[Owned]] = []

    def __len__(self) -> int:
        return len(self._live)

    def all(self) -> list[ResourceInstance]:
        return list(self._live.values())

    def captured(self, item: Owned) -> None:
        """A node or lazy collection was created (or a shared one handed out again): it
        belongs to the instance being built, if any."""
        if self._capture is not None:
            self._capture.append(item)

    # -- creating and freeing ----------------------------------------------------------------
    def instantiate(self, resource: str, params: Any) -> ResourceInstance:
        cls = self._service.resources.get(resource)
        if cls is None:
            raise UnknownResourceError(f"unknown resource {resource!r}")
        try:
            check_json(params)
            canonical = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
        except (NotJsonError, TypeError) as err:
            raise ParamsRejectedError(f"params are not JSON: {err}") from err
        existing = self._live.get((resource, canonical))
        if existing is not None:
            existing.refs += 1
            return existing
        if self._tick() is not None:
            raise GraphError("cannot instantiate a resource during a tick")
        captured: list[Owned] = []
        self._capture = captured
        try:
            try:
                obj = cls(params)
            except Exception as err:
                raise ParamsRejectedError(_reason(err)) from err
            try:
                out = obj.instantiate(self._handles(), self._context)
            except Exception as err:
                raise ParamsRejectedError(_reason(err)) from err
            if not isinstance(out, EagerCollection):
                raise ParamsRejectedError(
                    f"resource {resource!r} did not return an EagerCollection"
                )
        except BaseException:
            self._capture = None
            free(captured)
            raise
        self._capture = None
        self._ids += 1
        # orjson's result keeps its 4 KB output buffer: an exact-size copy, since every live
        # instance keeps its canonical params.
        canonical = bytes(memoryview(canonical))
        inst = ResourceInstance(
            id=self._ids,
            resource=resource,
            params=params,
            canonical_params=canonical,
            output=out.node,
            nodes=tuple(n for n in captured if isinstance(n, Node)),
            lazies=tuple(n for n in captured if isinstance(n, LazyCollection)),
        )
        out.node.tracked = True
        self._live[(resource, canonical)] = inst
        owner = self._by_output.get(out.node.id)
        if owner is None:
            self._by_output[out.node.id] = inst
        elif isinstance(owner, dict):
            owner[inst] = None
        else:
            self._by_output[out.node.id] = {owner: None, inst: None}
        return inst

    def release(self, inst: ResourceInstance) -> None:
        if inst.refs <= 0:
            raise GraphError(f"instance #{inst.id} ({inst.resource}) was already released")
        inst.refs -= 1
        if inst.refs > 0:
            return
        if self._live.get((inst.resource, inst.canonical_params)) is inst:
            del self._live[(inst.resource, inst.canonical_params)]
        owner = self._by_output.get(inst.output.id)
        if owner is inst:
            del self._by_output[inst.output.id]
        elif isinstance(owner, dict):
            owner.pop(inst, None)
            if len(owner) == 1:
                self._by_output[inst.output.id] = next(iter(owner))
        if self._tick() is not None:
            # A tick is open (see Engine.begin): its undo may still touch these nodes. Free
            # them once it is committed or aborted.
            self._free_later.append([*inst.nodes, *inst.lazies])
        else:
            free([*inst.nodes, *inst.lazies])

    def tick_ended(self) -> None:
        """Free what was released while a tick was open."""
        while self._free_later:
            free(self._free_later.pop())

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


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


def free(items: Sequence[Owned]) -> None:
    # Newest first: a node is freed before the nodes it was built from.
    for item in reversed(items):
        item.detach()
