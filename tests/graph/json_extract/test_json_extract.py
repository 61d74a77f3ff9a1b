"""json_extract: Skip's pattern tables (skiplang/skjson/tests/test.sk, skipruntime-ts tests.ts),
its LIKE matching of paths, the errors, and the corners of Skip's semantics we keep."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import graph
from graph import (
    Context,
    EagerCollection,
    Engine,
    Mapper,
    NotJsonError,
    PatternError,
    Resource,
    Service,
    Values,
    json_extract,
)
from graph.json_extract.extract import LikePattern, extract


def typed(value: Any) -> str:
    """JSON text, which tells 0 from 0.0 and 1 from true where `==` does not."""
    return json.dumps(value, sort_keys=True)


# skiplang/skjson/tests/test.sk, testPatterns: (pattern, JSON input) -> matches, in Skip's
# order. Skip's list of (var, value) pairs is jsonExtract's list of {var: value}.
SKIP_PATTERNS: list[tuple[str, str, list[Any]]] = [
    (
        '{x[]: var1, ?"y[0]": var2}',
        '{"x":[1,2,3], "y[0]":[4,5,6,null]}',
        [[{"var2": [4, 5, 6, None]}, {"var1": n}] for n in (1, 2, 3)],
    ),
    (
        "{x[]: var1, ?y[0]: var2}",
        '{"x":[1,2,3], "y":[4,5,6,null]}',
        [[{"var2": 4}, {"var1": n}] for n in (1, 2, 3)],
    ),
    ("{%: var, x:var<int>}", '{"x":1, "y":2}', [[{"var": 1}, {"var": 2}]]),
    ("{%: var, x:var<int>, y:y}", '{"x":1, "y":2}', []),
    ("{%: var}", '{"x":1, "y":2}', [[{"var": 1}], [{"var": 2}]]),
    ("{?%: var, x:var<int>, y:y}", '{"x":1, "y":2}', []),
    ("{%.x: var, y:y}", '{"x":1, "y":2}', [[{"y": 2}, {"var": 1}]]),
    ("{.%.x: var, y:y}", '{"x":1, "y":2}', []),
    ("{.%x: var, y:y}", '{"x":1, "y":2}', [[{"y": 2}, {"var": 1}]]),
    ("{.x%: var, y:y}", '{"x":1, "y":2}', [[{"y": 2}, {"var": 1}]]),
    ("{x%: var, y:y}", '{"x":1, "y":2}', [[{"y": 2}, {"var": 1}]]),
    ("{x%[]: var, y:y}", '{"x":[1], "y":2}', [[{"y": 2}, {"var": 1}]]),
    (
        "{%.x: var, y:var2}",
        '{"x":1, "y":[{"x":5}]}',
        [[{"var2": [{"x": 5}]}, {"var": 1}]],
    ),
    ("{%.x: var}", '{"x":1, "y":[{"x":5}]}', [[{"var": 1}], [{"var": 5}]]),
    ("{%.x: var, z:foo}", '{"x":1, "y":[{"x":5}]}', []),
    (
        "{%.x: var, ?z:foo}",
        '{"x":1, "y":[{"x":5}]}',
        [[{"foo": None}, {"var": 1}], [{"foo": None}, {"var": 5}]],
    ),
    (
        "{tags[]: tag<string>}",
        '{"tags":["#foo1","#foo2"]}',
        [[{"tag": "#foo1"}], [{"tag": "#foo2"}]],
    ),
    ("[tag<string>]", '["#foo1","#foo2"]', [[{"tag": "#foo1"}], [{"tag": "#foo2"}]]),
    *(
        (
            pattern,
            '{"data":[{"id":1,"n":"n1"},{"id":2,"n":"n2"}],"s":2}',
            [[{"n": "n1"}, {"id": 1}], [{"n": "n2"}, {"id": 2}]],
        )
        for pattern in (
            "{data[]: {id<int>, n<string>}}",
            "{%:{id<int>, n<string>}}",
            "{%data%:{id<int>, n<string>}}",
            "{%data[%]:{id<int>, n<string>}}",
        )
    ),
    *(
        (
            pattern,
            '{"data":[[{"id":1,"n":"n1"},{"id":2,"n":"n2"}]],"s":2}',
            [[{"n": "n1"}, {"id": 1}], [{"n": "n2"}, {"id": 2}]],
        )
        for pattern in ("{data[][]:{id<int>, n<string>}}", "{data[%]:{id<int>, n<string>}}")
    ),
    (
        "{x[]: v1, y[]: v2}",
        '{"x":[1,2,3], "y":[4,5,6]}',
        [[{"v2": y}, {"v1": x}] for x in (1, 2, 3) for y in (4, 5, 6)],
    ),
    ("{x[0]: x}", '{"x":[]}', []),
    ("{x[0]: x}", '{"x":[0]}', [[{"x": 0}]]),
    ("{x[]: x}", '{"x":[]}', [[{"x": None}]]),
    ("{x[]: x}", '{"x":[0]}', [[{"x": 0}]]),
    ("{x[]: x}", '{"x":[0, 1]}', [[{"x": 0}], [{"x": 1}]]),
    ("{x[].y: x}", '{"x":[{"y":0}]}', [[{"x": 0}]]),
    ("{?c: x}", "{}", [[{"x": None}]]),
    ("{?c: x}", '{"c":0}', [[{"x": 0}]]),
    ("{?c: x}", '{"z":0}', [[{"x": None}]]),
    ("[x]", "[]", [[{"x": None}]]),
    ("[x]", "[0.0]", [[{"x": 0.0}]]),
    ("[{x:x}]", "[]", []),
    ("[{x:x}]", '[{"x":"foo"}]', [[{"x": "foo"}]]),
    ("[]", "[]", []),
    ("[]", "[0, 1, 2]", []),
    ("[]", "{}", []),
    ("{}", "[]", []),
    ("{}", "[0, 1, 2]", []),
    ("{}", "{}", []),
    ("{x:[],y}", '{"x":[],"y":0}', [[{"y": 0}]]),
    ("{x:{},y}", '{"x":{},"y":0}', [[{"y": 0}]]),
    ('{"a.b":x}', '{"a.b":0}', [[{"x": 0}]]),
    ('{"a.b":x}', '{"a":{"b":0}}', []),
    ("{a.b:x}", '{"a":{"b":0}}', [[{"x": 0}]]),
    ("{a.b:x}", '{"a":{"c":{"b":0}}}', []),
    ("{a<num>}", '{"a":0}', [[{"a": 0.0}]]),
    ("{a<num>}", '{"a":0.0}', [[{"a": 0.0}]]),
    ("{a<float>}", '{"a":0.0}', [[{"a": 0.0}]]),
    (
        "{obj<{c:{d:[num]}}>}",
        '{"obj":{"c":{"d":[0, 1, 2.3]}}}',
        [[{"obj": {"c": {"d": [0.0, 1.0, 2.3]}}}]],
    ),
    ("%.a:a", '{"a":0}', [[{"a": 0}]]),
    ("%.a:a<num>", '[{"a":0}]', [[{"a": 0.0}]]),
]


def test_the_whole_skip_table_is_here() -> None:
    assert len(SKIP_PATTERNS) == 56


@pytest.mark.parametrize(("pattern", "text", "expected"), SKIP_PATTERNS)
def test_skip_patterns(pattern: str, text: str, expected: list[Any]) -> None:
    value = json.loads(text)
    assert typed(extract(value, pattern)) == typed(expected)
    if isinstance(value, dict):
        assert typed(json_extract(value, pattern)) == typed(expected)
    else:
        # Skip's matcher takes any JSON; its jsonExtract (and ours) only an object.
        with pytest.raises(NotJsonError, match="JSON object"):
            json_extract(value, pattern)


# skiplang/skjson/tests/test.sk, testPathMatch: (pattern, path, `[]` is an index, matches).
SKIP_PATH_MATCHES = [
    ("a[]", "a[0]", True, True),
    ("a[]", "a[0]", False, False),
    ("a[]", "a[x]", True, False),
    ("a[%]", "a[x]", False, True),
    ("a[][]", "a[0][1]", True, True),
    ("a[%]", "a[0][1]", False, True),
    ("a[%]%", "a[0][1]", False, True),
    ("%[%]%", "a[0][1]", False, True),
    ("%[%]%", "a[0[1]", False, True),
    ("a[%]", "a[0][1]", True, True),
    ("a[%]%", "a[0][1]", True, True),
    ("%[%]%", "a[0][1]", True, True),
    ("%[%]%", "a[0[1]", True, True),
    ("%abc", "xxxabc", False, True),
    ("%abc", "xxxab", False, False),
    ("%abc%", "xxxabcxxx", False, True),
    ("abc%abc%abc", "abcabcabcabcabc", False, True),
    # Skip's loose end, kept: the last piece is checked at the end apart from the search.
    ("abc", "abcabc", False, True),
]


@pytest.mark.parametrize(("pattern", "text", "arrays", "expected"), SKIP_PATH_MATCHES)
def test_skip_path_matches(pattern: str, text: str, arrays: bool, expected: bool) -> None:
    assert LikePattern(pattern, with_arrays=arrays).matches(text) is expected


# skipruntime-ts/tests/src/tests.ts, testJSONExtract: context.jsonExtract in a mapper.
Pairs = Iterator[tuple[Any, Any]]


class JSONExtract(Mapper):
    def __init__(self, context: Context) -> None:
        self.context = context

    def map_entry(self, key: Any, values: Values) -> Pairs:
        value = values.get_unique()
        yield key, self.context.json_extract(value["value"], value["pattern"])


class JSONExtractResource(Resource):
    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["input"].map(JSONExtract, context)


class PlainExtract(Mapper):
    """No context at hand: the module-level function."""

    def map_entry(self, key: Any, values: Values) -> Pairs:
        for value in values:
            yield key, graph.json_extract(value["value"], value["pattern"])


X_Y0 = '{x[]: var1, ?"y[0]": var2}'
X_Y_0 = "{x[]: var1, ?y[0]: var2}"


def test_skip_runtime_json_extract() -> None:
    inputs = [
        (0, [{"value": {"x": [1, 2, 3], "y[0]": [4, 5, 6, None]}, "pattern": X_Y0}]),
        (1, [{"value": {"x": [1, 2, 3], "y": [4, 5, 6, None]}, "pattern": X_Y_0}]),
        (2, [{"value": {"x": 1, "y": 2}, "pattern": "{%: var, x:var<int>}"}]),
    ]
    expected = [
        (
            0,
            [
                [
                    [{"var2": [4, 5, 6, None]}, {"var1": 1}],
                    [{"var2": [4, 5, 6, None]}, {"var1": 2}],
                    [{"var2": [4, 5, 6, None]}, {"var1": 3}],
                ]
            ],
        ),
        (
            1,
            [
                [
                    [{"var2": 4}, {"var1": 1}],
                    [{"var2": 4}, {"var1": 2}],
                    [{"var2": 4}, {"var1": 3}],
                ]
            ],
        ),
        (2, [[[{"var": 1}, {"var": 2}]]]),
    ]
    service = Service(
        inputs={"input": inputs},
        resources={"jsonExtract": JSONExtractResource},
        create_graph=lambda ins, ctx: {
            "input": ins["input"],
            "plain": ins["input"].map(PlainExtract),
        },
    )
    engine = Engine.for_service(service)
    assert typed(engine.instantiate("jsonExtract", {}).entries()) == typed(expected)
    assert typed(engine.collection_entries("plain")) == typed(expected)
    # And it follows updates like any mapper.
    engine.apply({"input": [(2, [{"value": {"x": 1, "y": 2}, "pattern": "{%: v}"}])]})
    assert engine.collection_entries("plain")[2] == (2, [[[{"v": 1}], [{"v": 2}]]])


# Corners of Skip's semantics, kept as they are.
SKIP_CORNERS: list[tuple[str, Any, list[Any]]] = [
    # Blanks are ignored everywhere, inside names too.
    ("{ a b : x }", {"ab": 1}, [[{"x": 1}]]),
    # A repeated field: the last one wins.
    ("{x: a, x: b}", {"x": 1}, [[{"b": 1}]]),
    # A trailing comma is fine; an empty variable name too.
    ("{x: a,}", {"x": 1}, [[{"a": 1}]]),
    ("{x:}", {"x": 1}, [[{"": 1}]]),
    # `[]` binds nothing but matches once per element.
    ("{x: [], y}", {"x": [1, 2], "y": 0}, [[{"y": 0}], [{"y": 0}]]),
    # A missing optional field binds its variables to null... but an array pattern forgets
    # the fields before it.
    ("{?a: {b: x, c: y}}", {}, [[{"y": None}, {"x": None}]]),
    ("{?a: {b: x, c[]: y}}", {}, [[{"y": None}]]),
    # An optional field that is there but does not match binds null as well.
    ("{?a: x<int>}", {"a": "s"}, [[{"x": None}]]),
    ("{a: x<int>}", {"a": "s"}, []),
    # A quoted name is literal, escapes included.
    ('{"a b": x}', {"a b": 1}, [[{"x": 1}]]),
    ('{"a\\"b": x}', {'a\\"b': 1}, [[{"x": 1}]]),
    # An index out of range matches nothing.
    ("{x[5]: v}", {"x": [1]}, []),
    ("{x[0][1]: v}", {"x": [[1, 2]]}, [[{"v": 2}]]),
    # Paths are offered to `%` depth first, fields by name, a value before what it holds.
    (
        "{%: v}",
        {"b": [1], "a": {"c": 2}},
        [[{"v": {"c": 2}}], [{"v": 2}], [{"v": [1]}], [{"v": 1}]],
    ),
    # Fields the pattern fixes are hidden from `%`, with everything under them.
    ("{%: v, a: w}", {"a": {"c": 2}, "b": 3}, [[{"w": {"c": 2}}, {"v": 3}]]),
    # Types: kinds, `num`, closed objects, required fields.
    ("{a<int>}", {"a": 1.0}, []),
    ("{a<num>}", {"a": True}, []),
    ("{a<int | null>}", {"a": None}, [[{"a": None}]]),
    ("{a<[int]>}", {"a": [1, "x"]}, []),
    ("{a<[int | string]>}", {"a": [1, "x"]}, [[{"a": [1, "x"]}]]),
    ("{a<[]>}", {"a": []}, [[{"a": []}]]),
    ("{a<[]>}", {"a": [1]}, []),
    ("{o<{a: int}>}", {"o": {"a": 1, "b": 2}}, []),
    ("{o<{a: int, ?b: int}>}", {"o": {"a": 1}}, [[{"o": {"a": 1}}]]),
    ("{o<{a: int, ?b: int}>}", {"o": {"b": 1}}, []),
    ("{o<[{a: num}]>}", {"o": [{"a": 1}, {"a": 2.5}]}, [[{"o": [{"a": 1.0}, {"a": 2.5}]}]]),
    # Unions of object types, as Skip counts their fields (see below).
    ("{o<{a: int} | {b: int}>}", {"o": {"a": 1}}, []),
    ("{o<{a: int} | {b: int}>}", {"o": {"a": 1, "b": 2}}, [[{"o": {"a": 1, "b": 2}}]]),
    ("{o<{a: int} | {a: string}>}", {"o": {}}, [[{"o": {}}]]),
    # Skip counts fields (required 2, optional 1, a union adds up) and requires those whose
    # count is their object type's: 2 at the top of a type, 4 under a union of array types.
    ("{o<{?a: int} | {?a: int}>}", {"o": {}}, []),
    ("{o<[{a: int}] | [{b: int}]>}", {"o": [{}]}, [[{"o": [{}]}]]),
    ("{o<[{a: int}] | [{a: int}]>}", {"o": [{}]}, []),
    ("{o<[{a: int}] | [{a: int}]>}", {"o": [{"a": 1}]}, [[{"o": [{"a": 1}]}]]),
    ("{o<[{?a: int}] | [{?a: int}]>}", {"o": [{}]}, [[{"o": [{}]}]]),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), SKIP_CORNERS)
def test_skip_corners(pattern: str, value: Any, expected: list[Any]) -> None:
    assert typed(json_extract(value, pattern)) == typed(expected)


@pytest.mark.parametrize(
    ("pattern", "position", "message"),
    [
        ("", 0, "expected a pattern"),
        ("   ", 3, "expected a pattern"),
        ("{x", 2, "expected ':'"),
        ("{x: a", 5, "expected ',' or '}'"),
        ("{x: a} y", 7, "unexpected 'y' after the pattern"),
        ("{x: 1a}", 4, "'1a' is not a variable name"),
        ("{x: a?}", 5, "unexpected '?' after the variable 'a'"),
        ("{x: [a}", 6, "expected ']'"),
        ("{x: a<intt>}", 6, "unknown type 'intt'"),
        ("{x: a<int}", 9, "expected '>'"),
        ("{x: a<{b int}>}", 12, "expected ':'"),  # blanks skipped: `bint`
        ("{x[a]: v}", 3, "unexpected 'a' in an index"),
        ("{[0]: v}", 1, "cannot start with '['"),
        ("{a.b}", 1, "the field 'a.b' needs a variable"),
        ('{"a"}', 1, "needs a variable"),
        ("{a.: x}", 1, "expected a name after '.'"),
        ("{%a: v, %b: w}", 8, "only one field name may have a '%'"),
        ("{a.b: x, a.c: y}", 0, "the field 'a' is matched twice"),
        ('{"a": x, a: y}', 0, "the field 'a' is matched twice"),
        # Skip's parser never returns from these: quote them.
        ("{user_id: x}", 1, "cannot hold '_' unquoted"),
        ("{a: {b-c: x}}", 5, "cannot hold '-' unquoted"),
        ('{"a\\', 4, "unterminated string"),
        ("%", 1, "expected ':'"),
        ("%<int>", 0, "needs a variable"),
    ],
)
def test_malformed_patterns(pattern: str, position: int, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)) as caught:
        json_extract({"a": 1}, pattern)
    assert caught.value.position == position
    assert caught.value.pattern == pattern
    assert f"at position {position}" in str(caught.value)
    assert isinstance(caught.value, graph.GraphError)


def test_an_inner_special_field_under_an_outer_one_is_refused_as_skip_does() -> None:
    pattern = "{a: {%: x}, %: y}"
    # Skip's matcher stops on an invariant once the outer `%` looks inside `a`'s object.
    with pytest.raises(PatternError, match="another '%' field searches") as caught:
        json_extract({"a": {"b": 1}}, pattern)
    assert caught.value.position == 5
    # ...which it does not when `a` holds no field.
    assert json_extract({"a": {}, "c": 2}, pattern) == []


@pytest.mark.parametrize("value", [[1], "x", 1, None, True])
def test_the_value_must_be_an_object(value: Any) -> None:
    with pytest.raises(NotJsonError, match="JSON object"):
        json_extract(value, "{a: x}")


def test_the_value_must_be_json() -> None:
    with pytest.raises(NotJsonError):
        json_extract({"a": {1, 2}}, "{a: x}")
    with pytest.raises(NotJsonError):
        json_extract({"a": float("nan")}, "{a: x}")


def test_the_pattern_must_be_a_string() -> None:
    with pytest.raises(PatternError, match="a pattern is a string"):
        json_extract({"a": 1}, b"{a: x}")  # type: ignore[arg-type]


def test_results_are_fresh_copies_with_fields_in_name_order() -> None:
    value = {"a": {"z": [1], "b": 2}}
    [[found]] = json_extract(value, "{a: x}")
    assert list(found["x"]) == ["b", "z"]
    found["x"]["z"].append(2)
    assert value == {"a": {"z": [1], "b": 2}}
    # Tuples are JSON arrays too; they come back as lists.
    assert json_extract({"a": (1, 2)}, "{a[]: x}") == [[{"x": 1}], [{"x": 2}]]


def test_context_delegates_to_the_function() -> None:
    service = Service(inputs={}, resources={}, create_graph=lambda ins, ctx: {})
    context = Context(Engine.for_service(service))
    value = {"x": [1, 2]}
    assert context.json_extract(value, "{x[]: v}") == json_extract(value, "{x[]: v}")
