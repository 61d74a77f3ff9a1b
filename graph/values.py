"""`Values`: the read-only view of one key's values handed to user code; `Delta`: how they
changed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from graph.errors import KeyLookupError

_MISSING: Any = object()

#: What changed at one key: (values removed, values added).
Delta = tuple[list[Any], list[Any]]


class Values(Sequence[Any]):
    """The values of one key, in insertion order. Never empty when given to `map_entry`."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self._items[index])
        return self._items[index]

    def get_unique(self, default: Any = _MISSING) -> Any:
        """The single value; an error (or `default`) when there are none or several."""
        if len(self._items) == 1:
            return self._items[0]
        if default is not _MISSING:
            return default
        raise KeyLookupError(f"expected exactly one value, found {len(self._items)}")

    def to_list(self) -> list[Any]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Values({list(self._items)!r})"
