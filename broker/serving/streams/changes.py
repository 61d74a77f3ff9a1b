"""Merging successive change lists of one collection into the net change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from broker.types import Entry
from graph import json_sort_key


class ChangeMerger:
    """Accumulates change lists; for each key the latest values win ([] = deleted).

    Keys are indexed by `json_sort_key`, which is hashable and identifies a key exactly as the
    engine does (JSON arrays and objects are not hashable themselves).
    """

    __slots__ = ("_latest",)

    def __init__(self) -> None:
        self._latest: dict[tuple[Any, ...], Entry] = {}

    def __len__(self) -> int:
        return len(self._latest)

    def add(self, entries: Iterable[Entry]) -> None:
        latest = self._latest
        for key, values in entries:
            latest[json_sort_key(key)] = (key, values)

    def entries(self) -> list[Entry]:
        """The net change, in docs/protocol.md key order."""
        latest = self._latest
        return [latest[k] for k in sorted(latest)]


def merge_changes(batches: Iterable[Sequence[Entry]]) -> list[Entry]:
    """The net change of applying `batches` in order."""
    merger = ChangeMerger()
    for batch in batches:
        merger.add(batch)
    return merger.entries()
