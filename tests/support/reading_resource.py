"""The issue's reproduction of an untracked read, as a service part: `Picked` reads
input1[params] in `instantiate` and keeps input2's values listed there; it cannot be built while
input1 holds the key "fail" (a resource that stops being buildable after a write)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graph import Context, EagerCollection, Mapper, Resource, Values


class Filter(Mapper):
    def __init__(self, ids: list[Any]) -> None:
        self.ids = ids

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for value in values:
            if value in self.ids:
                yield key, value


class Picked(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        if collections["input1"].get_array("fail"):
            raise ValueError("input1 says fail")
        return collections["input2"].map(Filter, collections["input1"].get_array(self.params))
