"""The types of json_extract patterns: `v<int | null>`, `v<[num]>`, `v<{a: string, ?b: int}>`.

A port of the part of Skip's SKJSON types that matching uses: parsing a type, deciding whether a
value has it (Skip's `isSuperType` of the value's type), and `num`'s conversion of integers to
floats. Grammar:

    type   := simple ('|' simple)*
    simple := 'null' | 'bool' | 'int' | 'float' | 'string' | 'num'
            | '[' ']' | '[' type ']'
            | '{' (field (',' field)*)? '}'
    field  := '?'? (name | '"' chars '"') ':' type

`num` is `int | float`; `[]` is the type of empty arrays only; objects are closed (a value may
not have fields the type does not list), and a field without `?` must be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from graph.json_extract.lexer import Lexer

Json = Any

# Skip's kinds, in its order (types are kept sorted by kind, one entry per kind).
NULL, BOOL, INT, FLOAT, STRING, ARRAY, OBJECT = range(7)
_NUM: Final = -1  # `num`, which the parser expands to INT and FLOAT

# Skip's FieldCount: a parsed type counts every kind and every required field twice, an optional
# field once. Unions add counts up, which is how `{a: int} | {a: string}` ends with `a` optional.
_ALWAYS: Final = 2
_OPTIONAL: Final = 1

_SCALARS: Final = {"null": NULL, "bool": BOOL, "int": INT, "float": FLOAT, "string": STRING}


@dataclass(frozen=True, slots=True)
class FieldType:
    name: str
    count: int
    type: JsonType


@dataclass(frozen=True, slots=True)
class SimpleType:
    kind: int
    item: JsonType | None = None  # arrays: the type of every element
    fields: tuple[FieldType, ...] = ()  # objects: sorted by name


@dataclass(frozen=True, slots=True)
class JsonType:
    entries: tuple[tuple[int, SimpleType], ...]  # (count, type), sorted by kind


NO_TYPE: Final = JsonType(())


def kind_of(value: Json) -> int:
    if value is None:
        return NULL
    t = type(value)
    # bool before int: True is an int to Python, never to JSON.
    if t is bool:
        return BOOL
    if t is int:
        return INT
    if t is float:
        return FLOAT
    if t is str:
        return STRING
    if t is list or t is tuple:
        return ARRAY
    return OBJECT


# -- parsing -----------------------------------------------------------------------------------


def parse_type(lex: Lexer) -> JsonType:
    simples = [_simple(lex)]
    while True:
        char = lex.next()
        if char == "|":
            simples.append(_simple(lex))
            continue
        if char is not None:
            lex.back(char)
        return _normalize(simples)


def _simple(lex: Lexer) -> SimpleType:
    char = lex.next()
    if char is None:
        raise lex.error("expected a type")
    if char == "[":
        after = lex.next()
        if after is None:
            raise lex.error("expected ']'")
        if after == "]":
            return SimpleType(ARRAY, item=NO_TYPE)
        lex.back(after)
        item = parse_type(lex)
        lex.expect("]")
        return SimpleType(ARRAY, item=item)
    if char == "{":
        return SimpleType(OBJECT, fields=_fields(lex))
    lex.back(char)
    start = lex.position
    name = lex.keyword()
    if name == "num":
        return SimpleType(_NUM)
    if name not in _SCALARS:
        raise lex.error(f"unknown type {name!r}", start)
    return SimpleType(_SCALARS[name])


def _fields(lex: Lexer) -> tuple[FieldType, ...]:
    # A later field of the same name replaces an earlier one, as in Skip's map of fields.
    fields: dict[str, FieldType] = {}
    while True:
        char = lex.next()
        if char is None:
            raise lex.error("expected a field or '}'")
        if char == "}":
            break
        lex.back(char)
        field = _field(lex)
        fields[field.name] = field
        char = lex.next()
        if char == "}":
            break
        if char != ",":
            raise lex.error("expected ',' or '}'")
    return tuple(sorted(fields.values(), key=lambda f: f.name))


def _field(lex: Lexer) -> FieldType:
    char = lex.next()
    optional = char == "?"
    if char is not None and not optional:
        lex.back(char)
    char = lex.next()
    if char is None:
        raise lex.error("expected a field name")
    if char == '"':
        name = lex.string()
    else:
        lex.back(char)
        name = lex.keyword()
    if lex.next() != ":":
        raise lex.error("expected ':'")
    return FieldType(name, _OPTIONAL if optional else _ALWAYS, parse_type(lex))


def _normalize(simples: list[SimpleType]) -> JsonType:
    expanded: list[SimpleType] = []
    for simple in simples:
        if simple.kind == _NUM:
            expanded += [SimpleType(INT), SimpleType(FLOAT)]
        else:
            expanded.append(simple)
    expanded.sort(key=lambda s: s.kind)
    merged: list[SimpleType] = []
    for simple in expanded:
        if merged and merged[-1].kind == simple.kind:
            merged[-1] = _union_simple(merged[-1], simple)
        else:
            merged.append(simple)
    return JsonType(tuple((_ALWAYS, s) for s in merged))


def _union(a: JsonType, b: JsonType) -> JsonType:
    by_kind: dict[int, tuple[int, SimpleType]] = {s.kind: (c, s) for c, s in a.entries}
    for count, simple in b.entries:
        if simple.kind in by_kind:
            old_count, old = by_kind[simple.kind]
            by_kind[simple.kind] = (old_count + count, _union_simple(old, simple))
        else:
            by_kind[simple.kind] = (count, simple)
    return JsonType(tuple(by_kind[k] for k in sorted(by_kind)))


def _union_simple(a: SimpleType, b: SimpleType) -> SimpleType:
    if a.kind == ARRAY:
        assert a.item is not None and b.item is not None
        return SimpleType(ARRAY, item=_union(a.item, b.item))
    if a.kind == OBJECT:
        fields = {f.name: f for f in a.fields}
        for f in b.fields:
            old = fields.get(f.name)
            fields[f.name] = (
                f
                if old is None
                else FieldType(f.name, old.count + f.count, _union(old.type, f.type))
            )
        return SimpleType(OBJECT, fields=tuple(fields[n] for n in sorted(fields)))
    return a


# -- values ------------------------------------------------------------------------------------


def accepts(ty: JsonType, value: Json) -> bool:
    """Whether `value` has type `ty`: each of its parts is of a kind `ty` lists at that place,
    its objects have no field `ty` does not know and every field `ty` requires."""
    kind = kind_of(value)
    entry = _entry(ty, kind)
    if entry is None:
        return False
    count, simple = entry
    if kind == ARRAY:
        assert simple.item is not None
        return all(accepts(simple.item, item) for item in value)
    if kind == OBJECT:
        known = {f.name: f for f in simple.fields}
        for name, item in value.items():
            field = known.get(name)
            if field is None or not accepts(field.type, item):
                return False
        # Skip calls a field required when its count equals its object's: after a union of
        # object types, only the fields every alternative requires.
        return all(f.name in value for f in simple.fields if f.count == count)
    return True


def contains_num(ty: JsonType) -> bool:
    """Whether `num` (int and float, possibly null, nothing else) appears anywhere in `ty`."""
    if _is_num(ty):
        return True
    for _, simple in ty.entries:
        if simple.item is not None and contains_num(simple.item):
            return True
        if any(contains_num(f.type) for f in simple.fields):
            return True
    return False


def convert_num(ty: JsonType, value: Json) -> Json:
    """`value` (of type `ty`) with every integer at a place typed `num` made a float."""
    if _is_num(ty):
        return float(value) if kind_of(value) == INT else value
    kind = kind_of(value)
    entry = _entry(ty, kind)
    if entry is None:
        raise AssertionError("convert_num: the value does not have the type")
    simple = entry[1]
    if kind == ARRAY:
        assert simple.item is not None
        item_type = simple.item
        return [convert_num(item_type, item) for item in value]
    if kind == OBJECT:
        known = {f.name: f.type for f in simple.fields}
        return {
            name: convert_num(known[name], item) if name in known else item
            for name, item in sorted(value.items())
        }
    return value


def _entry(ty: JsonType, kind: int) -> tuple[int, SimpleType] | None:
    for entry in ty.entries:
        if entry[1].kind == kind:
            return entry
    return None


def _is_num(ty: JsonType) -> bool:
    kinds = {simple.kind for _, simple in ty.entries}
    return INT in kinds and FLOAT in kinds and kinds <= {NULL, INT, FLOAT}
