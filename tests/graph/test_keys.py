"""Key order (docs/protocol.md's total order) and key identity."""

from __future__ import annotations

import itertools
import math
from typing import Any

import orjson
import pytest

from graph import Engine, Mapper, NotJsonError, Service, Values, json_sort_key
from graph.keys import check_json, hkey, unkey

# Every key strictly smaller than the next one.
ORDERED_KEYS: list[Any] = [
    None,
    False,
    True,
    -1e300,
    -(2**63),
    -2.5,
    -1,
    -0.5,
    0,
    1e-300,
    0.5,
    1,
    1.5,
    2,
    10,
    2**53 + 1,
    1e300,
    "",
    " ",
    "A",
    "Z",
    "a",
    "aa",
    "ab",
    "b",
    "é",  # U+00E9
    "\u20ac",  # € (BMP, above Latin-1)
    "\uffff",
    "\U0001f600",  # 😀 (non-BMP: a single code point above every BMP one)
    "\U0001f600a",
    [],
    [None],
    [False],
    [True],
    [0],
    [0, None],
    [0, 0],
    [1],
    [1, "a"],
    ["a"],
    [[]],
    [[0]],
    [{}],
    {},
    {"a": None},
    {"a": 0},
    {"a": 0, "b": 0},
    {"a": 1},
    {"b": 0, "a": 5},  # its sorted pairs ("a", 5), ("b", 0) put it among the {"a": n}
    {"a": "x"},
    {"a": []},
    {"b": 0},
    {"b": 0, "c": None},
]


def test_table_is_strictly_increasing() -> None:
    for smaller, larger in itertools.pairwise(ORDERED_KEYS):
        assert json_sort_key(smaller) < json_sort_key(larger), (smaller, larger)


def test_sorting_a_shuffled_table() -> None:
    shuffled = list(reversed(ORDERED_KEYS))
    assert sorted(shuffled, key=json_sort_key) == ORDERED_KEYS


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (0, -0.0),
        ([1], [1.0]),
        ({"a": 2}, {"a": 2.0}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ((1, "x"), [1, "x"]),
    ],
)
def test_equal_keys(a: Any, b: Any) -> None:
    assert json_sort_key(a) == json_sort_key(b)
    assert hkey(a) == hkey(b)
    assert hash(hkey(a)) == hash(hkey(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [(True, 1), (False, 0), ([True], [1]), ({"a": True}, {"a": 1}), (None, False), ("1", 1)],
)
def test_distinct_keys(a: Any, b: Any) -> None:
    assert json_sort_key(a) != json_sort_key(b)
    assert hkey(a) != hkey(b)


@pytest.mark.parametrize(
    "key",
    [
        None,
        True,
        False,
        0,
        -3,
        2.5,
        "",
        "x",
        "\U0001f600",
        [],
        [1, [2, {"a": None}]],
        {},
        {"k": [True, {"z": 1}], "a": "b"},
    ],
)
def test_unkey_round_trips(key: Any) -> None:
    assert unkey(hkey(key)) == key
    assert type(unkey(hkey(key))) is type(key)


def test_integral_float_keys_are_canonical_ints() -> None:
    # 1 and 1.0 are one key; whichever is written, it reads back the same way.
    assert type(unkey(hkey(1.0))) is int
    assert unkey(hkey([2.0, {"a": -0.0}])) == [2, {"a": 0}]
    assert type(unkey(hkey(1.5))) is float
    assert type(unkey(hkey(1e300))) is float  # no int key equals it: stays a float
    assert unkey(hkey(2.0**63)) == 2**63 and type(unkey(hkey(2.0**63))) is int
    assert type(unkey(hkey(2.0**64))) is float


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        {1: "a"},
        {"a": {2: 3}},
        object(),
        {1, 2},
        b"x",
        2**64,
        -(2**63) - 1,
        "\ud800",
        ["ok", "\udfff"],
    ],
)
def test_non_json_keys_rejected(bad: Any) -> None:
    with pytest.raises(NotJsonError):
        hkey(bad)
    with pytest.raises(NotJsonError):
        json_sort_key(bad)


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, {1: "a"}, [object()], {"a": {1, 2}}, 2**64, "\ud800", {"\ud800": 1}],
)
def test_non_json_values_rejected(bad: Any) -> None:
    with pytest.raises(NotJsonError):
        check_json(bad)


def test_deeply_nested_key_is_a_clear_error() -> None:
    key: Any = 0
    for _ in range(500):
        key = [key]
    with pytest.raises(NotJsonError):
        hkey(key)


class _Identity(Mapper):
    def map_entry(self, key: Any, values: Values) -> Any:
        for v in values:
            yield key, v


def _engine(entries: list[Any]) -> Engine:
    def create_graph(inputs: Any, context: Any) -> dict[str, Any]:
        return {"out": inputs["in"].map(_Identity).slice(None, {"zzz": None})}

    return Engine.for_service(
        Service(inputs={"in": entries}, resources={}, create_graph=create_graph)
    )


def test_collections_list_entries_in_key_order() -> None:
    engine = _engine([(k, [i]) for i, k in enumerate(reversed(ORDERED_KEYS))])
    assert [k for k, _ in engine.collection_entries("in")] == ORDERED_KEYS
    assert [k for k, _ in engine.collection_entries("out")] == ORDERED_KEYS


def test_true_and_1_are_distinct_keys_in_a_collection() -> None:
    engine = _engine([(True, ["t"]), (1, ["one"]), (False, ["f"]), (0, ["zero"])])
    assert engine.collection_entries("in") == [
        (False, ["f"]),
        (True, ["t"]),
        (0, ["zero"]),
        (1, ["one"]),
    ]
    assert engine.collection_entries("out") == engine.collection_entries("in")


def test_1_and_1_0_are_the_same_key_in_a_collection() -> None:
    engine = _engine([(1, ["int"])])
    result = engine.apply({"in": [(1.0, ["float"])]})
    assert engine.collection_entries("in") == [(1, ["float"])]
    assert result.shared.changes["out"] == ((1, ["float"]),)
    engine.apply({"in": [([1.0, {"a": 2.0}], ["x"])]})
    engine.apply({"in": [([1, {"a": 2}], ["y"])]})
    assert engine.collection_entries("in") == [(1, ["float"]), ([1, {"a": 2}], ["y"])]
    # ... and the key reads back in one canonical form, whichever spelling was written first.
    assert orjson.dumps(engine.collection_entries("in")) == b'[[1,["float"]],[[1,{"a":2}],["y"]]]'
    engine.apply({"in": [(1.0, [])]})
    assert engine.collection_entries("out") == [([1, {"a": 2}], ["y"])]
