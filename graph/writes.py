"""Checking a write batch before it touches the graph: collection names, entry shapes, JSON."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from graph.errors import InvalidWriteError, NotJsonError, UnknownCollectionError
from graph.keys import HKey, check_json, hkey

#: A checked batch: per input collection, (canonical key, values) pairs.
Batch = dict[str, list[tuple[HKey, list[Any]]]]


def check_entries(name: str, entries: Any) -> list[tuple[HKey, list[Any]]]:
    """`entries` of collection `name` as (canonical key, values) pairs, or InvalidWriteError /
    NotJsonError naming the entry at fault."""
    if not isinstance(entries, list | tuple):
        raise InvalidWriteError(
            f"collection {name!r}: expected a list of [key, [values...]] entries"
        )
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise InvalidWriteError(f"collection {name!r}, entry {i}: expected [key, [values...]]")
        key, values = entry
        if not isinstance(values, list | tuple):
            raise InvalidWriteError(
                f"collection {name!r}, entry {i}: values must be a list, got {values!r}"
            )
        try:
            hk = hkey(key)
            for value in values:
                check_json(value)
        except NotJsonError as err:
            raise NotJsonError(f"collection {name!r}, entry {i}: {err}") from err
        out.append((hk, list(values)))
    return out


def check_batch(writes: Mapping[str, Any], inputs: Collection[str]) -> Batch:
    """A whole batch, every collection of which must be one of `inputs`."""
    if not isinstance(writes, Mapping):
        raise InvalidWriteError("a write batch maps collection names to entries")
    batch: Batch = {}
    for name, entries in writes.items():
        if name not in inputs:
            raise UnknownCollectionError(f"unknown input collection {name!r}")
        batch[name] = check_entries(name, entries)
    return batch
