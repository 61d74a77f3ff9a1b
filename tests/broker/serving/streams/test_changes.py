"""Merging change lists: later values win per key, the result is in docs/protocol.md key order."""

from __future__ import annotations

from typing import Any

import pytest

from broker.serving.streams.changes import ChangeMerger, merge_changes

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([], []),
        ([[("a", [1])]], [("a", [1])]),
        ([[("a", [1])], [("a", [2])]], [("a", [2])]),
        ([[("a", [1])], [("a", [])]], [("a", [])]),
        ([[("a", [])], [("a", [3])]], [("a", [3])]),
        ([[("b", [1])], [("a", [2])]], [("a", [2]), ("b", [1])]),
        # null < false < true < numbers < strings < arrays < objects
        (
            [
                [({"k": 1}, [1]), ([1], [2]), ("s", [3]), (2, [4]), (True, [5]), (False, [6])],
                [(None, [7])],
            ],
            [
                (None, [7]),
                (False, [6]),
                (True, [5]),
                (2, [4]),
                ("s", [3]),
                ([1], [2]),
                ({"k": 1}, [1]),
            ],
        ),
        # 1 and 1.0 are one key, as in the engine; true and 1 are not.
        (
            [[(1, ["int"]), (True, ["bool"])], [(1.0, ["float"])]],
            [(True, ["bool"]), (1.0, ["float"])],
        ),
        ([[([1, 2], [1]), ([1], [2])]], [([1], [2]), ([1, 2], [1])]),
    ],
)
def test_merge_changes(batches: list[list[Any]], expected: list[Any]) -> None:
    assert merge_changes(batches) == expected


def test_merger_counts_distinct_keys() -> None:
    merger = ChangeMerger()
    merger.add([("a", [1]), ("b", [1])])
    merger.add([("a", [2])])
    assert len(merger) == 2
