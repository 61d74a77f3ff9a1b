"""Changeset and TickResult: what one tick changed, as first-class encodable values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from graph.errors import GraphError

Entry = tuple[Any, list[Any]]


@dataclass(frozen=True)
class Changeset:
    """Per collection, the keys a tick changed with their complete new values ([] = deleted),
    in key order. This is the shape the leader publishes to Redis."""

    version: int
    changes: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not any(self.changes.values())

    def encode(self) -> bytes:
        return orjson.dumps(
            {"version": self.version, "changes": {k: list(v) for k, v in self.changes.items()}}
        )

    @classmethod
    def decode(cls, data: bytes | str) -> Changeset:
        try:
            raw = orjson.loads(data)
            version = raw["version"]
            changes = raw["changes"]
            if type(version) is not int or not isinstance(changes, dict):
                raise TypeError("bad field types")
            return cls(version, {name: _entries(entries) for name, entries in changes.items()})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise GraphError(f"not an encoded changeset: {err}") from err


def _entries(raw: Any) -> tuple[Entry, ...]:
    if type(raw) is not list:
        raise TypeError("a collection's changes must be a list of entries")
    out = []
    for entry in raw:
        if type(entry) is not list or len(entry) != 2 or type(entry[1]) is not list:
            raise TypeError(f"not a [key, [values...]] entry: {entry!r}")
        out.append((entry[0], entry[1]))
    return tuple(out)


@dataclass(frozen=True)
class TickResult:
    """The outcome of one tick: the shared changeset and each changed instance's entries."""

    version: int
    shared: Changeset
    instances: Mapping[int, list[Entry]]
