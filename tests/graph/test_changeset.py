"""Changeset: a pure encoder/decoder, tested as a table."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from graph import Changeset, GraphError, TickResult

ENCODINGS: list[tuple[Changeset, bytes]] = [
    (Changeset(0), b'{"version":0,"changes":{}}'),
    (Changeset(3, {"c": ()}), b'{"version":3,"changes":{"c":[]}}'),
    (
        Changeset(7, {"posts": ((1, [{"t": "a"}]), (2, []))}),
        b'{"version":7,"changes":{"posts":[[1,[{"t":"a"}]],[2,[]]]}}',
    ),
    (
        Changeset(
            12,
            {
                "a": ((None, [None]), (False, [True]), (-1.5, [0]), ("\U0001f600", ["é"])),
                "b": (([1, [2]], [[]]), ({"k": {"z": None}}, [{}, 1, "x"])),
            },
        ),
        b'{"version":12,"changes":{"a":[[null,[null]],[false,[true]],[-1.5,[0]],'
        b'["\xf0\x9f\x98\x80",["\xc3\xa9"]]],"b":[[[1,[2]],[[]]],[{"k":{"z":null}},[{},1,"x"]]]}}',
    ),
]


@pytest.mark.parametrize(("changeset", "encoded"), ENCODINGS)
def test_encode(changeset: Changeset, encoded: bytes) -> None:
    assert changeset.encode() == encoded


@pytest.mark.parametrize(("changeset", "encoded"), ENCODINGS)
def test_decode(changeset: Changeset, encoded: bytes) -> None:
    assert Changeset.decode(encoded) == changeset
    assert Changeset.decode(encoded.decode()) == changeset
    assert Changeset.decode(changeset.encode()).encode() == encoded


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"version":1}',
        b'{"changes":{}}',
        b'{"version":"1","changes":{}}',
        b'{"version":1.0,"changes":{}}',
        b'{"version":true,"changes":{}}',
        b'{"version":1,"changes":[]}',
        b'{"version":1,"changes":{"a":[[1]]}}',
        b'{"version":1,"changes":{"a":[[1,[2],3]]}}',
        b'{"version":1,"changes":{"a":[[1,2]]}}',
        b'{"version":1,"changes":{"a":5}}',
        b'{"version":1,"changes":{"a":[5]}}',
        b'{"version":1,"changes":{"a":[[1,"ab"]]}}',
        b'{"version":1,"changes":{"a":[[1,{"x":1}]]}}',
    ],
)
def test_decode_rejects_garbage_with_a_graph_error(data: bytes) -> None:
    with pytest.raises(GraphError, match="not an encoded changeset"):
        Changeset.decode(data)


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


def test_decoded_entries_have_the_tick_shape() -> None:
    decoded = Changeset.decode(b'{"version":2,"changes":{"a":[["k",["v"]],[["x"],[]]]}}')
    entries: tuple[Any, ...] = decoded.changes["a"]
    assert type(entries) is tuple
    assert entries == (("k", ["v"]), (["x"], []))
    entry: Any
    for entry in entries:
        assert type(entry) is tuple
        assert type(entry[1]) is list
