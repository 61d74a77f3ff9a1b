"""IntervalIndex: stabbing queries agree with a scan of every range, through adds and removes."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.keys import json_sort_key
from graph.nodes.intervals import IntervalIndex

SETTINGS = settings(
    max_examples=int(os.environ.get("SKIFF_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("SKIFF_HYPOTHESIS_DERANDOMIZE") == "1",
)

# Sort keys of JSON keys of several types: the bounds the engine indexes.
BOUNDS = [json_sort_key(k) for k in [None, False, True, -1, 0, 1, 2.5, 3, "a", "b", [0], [0, 1]]]


def test_stab_inclusive_bounds() -> None:
    index: IntervalIndex[str] = IntervalIndex()
    index.add(1, 3, 1, "a")
    index.add(3, 5, 2, "b")
    index.add(4, 4, 3, "c")
    assert sorted(index.stab(0)) == []
    assert sorted(index.stab(1)) == ["a"]
    assert sorted(index.stab(3)) == ["a", "b"]
    assert sorted(index.stab(4)) == ["b", "c"]
    assert sorted(index.stab(5)) == ["b"]
    assert sorted(index.stab(6)) == []
    index.remove(3, 2)
    assert sorted(index.stab(3)) == ["a"]
    assert len(index) == 2
    with pytest.raises(KeyError):
        index.remove(3, 2)


def test_many_nested_ranges() -> None:
    """The ranges [i, 2n - i] all contain n; a point outside them finds none of them."""
    n = 2000
    index: IntervalIndex[int] = IntervalIndex()
    for i in range(n):
        index.add(i, 2 * n - i, i, i)
    assert sorted(index.stab(n)) == list(range(n))
    assert index.stab(-1) == []
    assert index.stab(2 * n + 1) == []
    assert sorted(index.stab(5)) == list(range(6))


Op = tuple[str, int, int]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "add", "remove"]),
            st.integers(0, len(BOUNDS) - 1),
            st.integers(0, len(BOUNDS) - 1),
        ),
        max_size=60,
    )
)
def test_stab_agrees_with_a_scan(ops: list[Op]) -> None:
    index: IntervalIndex[int] = IntervalIndex()
    live: dict[tuple[Any, int], tuple[Any, Any, int]] = {}
    uid = 0
    for op, a, b in ops:
        low, high = min(BOUNDS[a], BOUNDS[b]), max(BOUNDS[a], BOUNDS[b])
        if op == "add":
            uid += 1
            index.add(low, high, uid, uid)
            live[(low, uid)] = (low, high, uid)
        elif live:
            name = sorted(live)[a % len(live)]
            index.remove(*name)
            del live[name]
        assert len(index) == len(live)
        for point in BOUNDS:
            expected = sorted(item for lo, hi, item in live.values() if lo <= point <= hi)
            assert sorted(index.stab(point)) == expected
