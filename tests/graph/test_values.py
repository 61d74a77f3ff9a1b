"""Values: the read-only view of one key's values handed to mappers."""

from __future__ import annotations

import pytest

from graph import KeyLookupError, Values


def test_sequence_protocol() -> None:
    values = Values([1, "a", {"b": None}])
    assert len(values) == 3
    assert list(values) == [1, "a", {"b": None}]
    assert values[0] == 1
    assert values[-1] == {"b": None}
    assert values[1:] == ["a", {"b": None}]
    assert "a" in values
    assert values.to_list() == [1, "a", {"b": None}]
    assert repr(values) == "Values([1, 'a', {'b': None}])"


def test_to_list_is_a_copy() -> None:
    items = [1, 2]
    copy = Values(items).to_list()
    copy.append(3)
    assert items == [1, 2]


def test_get_unique() -> None:
    assert Values(["only"]).get_unique() == "only"
    assert Values([None]).get_unique(default="d") is None


@pytest.mark.parametrize("items", [[], [1, 2]])
def test_get_unique_without_default_is_a_clear_error(items: list[int]) -> None:
    with pytest.raises(KeyLookupError, match=f"expected exactly one value, found {len(items)}"):
        Values(items).get_unique()


@pytest.mark.parametrize("items", [[], [1, 2]])
def test_get_unique_default_honoured(items: list[int]) -> None:
    assert Values(items).get_unique(default=7) == 7
    assert Values(items).get_unique(None) is None
