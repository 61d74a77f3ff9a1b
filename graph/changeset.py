"""Changeset and TickResult: what one tick changed, as frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Entry = tuple[Any, list[Any]]


@dataclass(frozen=True)
class Changeset:
    """Per collection, the keys a tick changed with their complete new values ([] = deleted),
    in key order: what a leader publishes (broker/store/codec.py's DeltaEntry encodes it) and a
    follower's mirror applies."""

    version: int
    changes: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not any(self.changes.values())


@dataclass(frozen=True)
class TickResult:
    """The outcome of one tick: the shared changeset and each changed instance's entries."""

    version: int
    shared: Changeset
    instances: Mapping[int, list[Entry]]
    #: Instances whose resource failed to build again when something it read changed: id ->
    #: why. They keep serving their old build until released; the caller drops them.
    failed: Mapping[int, str] = field(default_factory=dict)
