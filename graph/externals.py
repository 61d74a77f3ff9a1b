"""Externals: an engine's external collections, by name (see graph/external.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from graph.errors import GraphError, NotJsonError
from graph.external import Entry, ExternalCollection, ExternalListener, Scope, external_name
from graph.keys import HKey, check_json, same_json, unkey
from graph.writes import check_entries

if TYPE_CHECKING:
    from graph.host import Host


class Externals:
    def __init__(
        self,
        host: Host,
        services: Mapping[str, Any],
        building: Callable[[], bool],
        seed: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self._host = host
        self._services = services
        self._building = building
        self._seed = dict(seed or {})
        self.by_name: dict[str, ExternalCollection] = {}
        #: Told when a collection is opened or closed (the node's feeds); None: nobody.
        self.listener: ExternalListener | None = None

    def use(self, service: str, identifier: str, params: Any) -> ExternalCollection:
        """The collection of (service, identifier, params): a new reference to the live one,
        or a new one (local while a resource is being built, shared in create_graph)."""
        if service not in self._services:
            raise GraphError(f"unknown external service {service!r}")
        if not isinstance(identifier, str) or not identifier:
            raise GraphError(f"an external resource identifier is a string, got {identifier!r}")
        try:
            check_json(params)
            canonical = orjson.dumps(params, option=orjson.OPT_SORT_KEYS)
        except (NotJsonError, TypeError) as err:
            raise GraphError(f"external resource params are not JSON: {err}") from err
        name = external_name(service, identifier, canonical)
        existing = self.by_name.get(name)
        if existing is not None:
            existing.refs += 1
            self._host.register_reuse(existing)
            return existing
        scope: Scope = "local" if self._building() else "shared"
        node = ExternalCollection(self._host, service=service, identifier=identifier,
                                  params=params, name=name, scope=scope)  # fmt: skip
        seeded = self._seed.pop(name, None) if scope == "shared" else None
        if seeded:
            # A leader rebuilt from a snapshot: the content it held (durable, like an input).
            for key, values in check_entries(name, seeded):
                node.set(key, values)
        self.by_name[name] = node
        if self.listener is not None:
            self.listener.opened(node)
        return node

    def closed(self, node: ExternalCollection) -> None:
        if self.by_name.get(node.name) is node:
            del self.by_name[node.name]
            if self.listener is not None:
                self.listener.closed(node)

    def names(self, scope: Scope) -> tuple[str, ...]:
        return tuple(n for n, node in self.by_name.items() if node.scope == scope)

    def update_entries(
        self, name: str, entries: Sequence[Entry], is_init: bool
    ) -> list[tuple[Any, list[Any]]]:
        """The write making `name`'s collection follow one update of its service, as canonical
        entries: with `is_init` the entries are the whole content, so every key they omit is
        deleted. Entries that would change nothing are left out (a polled service repeats its
        content; a leader must not log a version per poll). Raises InvalidWriteError or
        NotJsonError when the service delivered something that is not entries of JSON."""
        node = self.by_name.get(name)
        if node is None:
            raise GraphError(f"no external collection {name!r}")
        checked = check_entries(name, list(entries))
        batch = [(unkey(k), values) for k, values in checked if not _same(node.get(k), values)]
        if is_init:
            named: set[HKey] = {k for k, _ in checked}
            batch += [(unkey(k), []) for k in list(node.keys()) if k not in named]
        return batch


def _same(old: list[Any] | None, new: list[Any]) -> bool:
    return same_json(old, new or None)
