"""Changeset and TickResult: frozen values. (What a leader publishes is encoded by
broker/store/codec.py's DeltaEntry: tests/broker/store/test_codec.py.)"""

from __future__ import annotations

import dataclasses

import pytest

from graph import Changeset, TickResult


@pytest.mark.parametrize(
    ("changeset", "empty"),
    [
        (Changeset(1), True),
        (Changeset(1, {"a": ()}), True),
        (Changeset(1, {"a": (), "b": ((1, []),)}), False),
    ],
)
def test_is_empty(changeset: Changeset, empty: bool) -> None:
    assert changeset.is_empty() is empty


def test_frozen() -> None:
    changeset = Changeset(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changeset.version = 2  # type: ignore[misc]
    result = TickResult(1, changeset, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.version = 2  # type: ignore[misc]
