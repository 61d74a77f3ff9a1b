"""`json_extract(value, pattern)`: Skip's jsonExtract, the destructuring of a JSON object by a
pattern (graph/json_extract/pattern.py has the grammar).

Each match is a list of one-field objects `{var: value}`, in Skip's order: within an object
pattern the fields are matched in name order and each match lists the last field's bindings
first; with several matches per field (`x[]`), the earlier fields vary slowest. A field with a
`%` is matched against the paths of the values under the object (`.a`, `.a[0].b`, ...) that no
other field of the pattern covers, as SQL LIKE does (`%` is any text, `[]` any index).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from graph.errors import GraphError, NotJsonError, PatternError
from graph.json_extract.pattern import (
    HIDDEN,
    ArrayPattern,
    FieldPattern,
    ObjectPattern,
    Pattern,
    Var,
    parse_pattern,
)
from graph.json_extract.pattern_types import (
    ARRAY,
    OBJECT,
    accepts,
    contains_num,
    convert_num,
    kind_of,
)
from graph.keys import check_json

Json = Any
Binding = tuple[str, Json]
# A step of a path under an object: a field name or an array index.
PathStep = str | int


def json_extract(value: Json, pattern: str) -> list[Json]:
    """The matches of `pattern` in the JSON object `value`, each a list of `{var: value}`.

    Raises PatternError for a malformed pattern, NotJsonError unless `value` is a JSON object.
    The values returned are fresh copies: changing them changes nothing in `value`.
    """
    if type(value) is not dict:
        raise NotJsonError(f"json_extract needs a JSON object, not {type(value).__name__}")
    return extract(value, pattern)


def extract(value: Json, pattern: str) -> list[Json]:
    """json_extract on any JSON value: Skip's matcher takes any, its jsonExtract only objects
    (tests/graph/json_extract/test_json_extract.py runs Skip's table through it)."""
    if type(pattern) is not str:
        raise PatternError(f"a pattern is a string, not {type(pattern).__name__}", repr(pattern), 0)
    check_json(value)
    matches: list[Json] = []
    try:
        for bindings in _match(parse_pattern(pattern), value):
            shown = [{name: _fresh(v)} for name, v in bindings if not name.startswith(HIDDEN)]
            if shown:
                matches.append(shown)
    except _NestedSpecialError as err:
        message = "a '%' field inside what another '%' field searches (Skip stops on an invariant)"
        raise PatternError(message, pattern, err.position) from None
    return matches


class _NestedSpecialError(GraphError):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


def _match(pattern: Pattern, value: Json) -> Iterator[list[Binding]]:
    if isinstance(pattern, Var):
        ty = pattern.type
        if ty is None:
            yield [(pattern.name, value)]
        elif accepts(ty, value):
            yield [(pattern.name, convert_num(ty, value) if contains_num(ty) else value)]
    elif isinstance(pattern, ArrayPattern):
        if kind_of(value) != ARRAY:
            return
        if pattern.index is not None:
            if 0 <= pattern.index < len(value):
                yield from _match(pattern.item, value[pattern.index])
        elif not value and isinstance(pattern.item, Var):
            # `x[]: v` on an empty array binds v to null rather than failing.
            yield from _match(pattern.item, None)
        else:
            for item in value:
                yield from _match(pattern.item, item)
    elif pattern.special is not None:
        yield from _match_special(pattern, pattern.special, value)
    elif not pattern.fields:
        if kind_of(value) == OBJECT and not value:
            yield [(HIDDEN, None)]
    else:
        yield from _combine(_match_fields([], value, pattern.fields))


def _match_special(
    pattern: ObjectPattern, special: FieldPattern, value: Json
) -> Iterator[list[Binding]]:
    name = special.name
    if not name.startswith((".", "%")):
        name = "." + name
    like = _like(name)
    others = ObjectPattern(None, pattern.fields)
    for path, found in _walk(value, []):
        if _covers(others, path) or not like.matches(_path_text(path)):
            continue
        bindings = list(_match(special.pattern, found))
        yield from _combine(_match_fields([bindings], value, pattern.fields))


def _match_fields(
    layers: list[list[list[Binding]]], value: Json, fields: tuple[FieldPattern, ...]
) -> list[list[list[Binding]]]:
    """One layer of alternatives per field (after `layers`), or [] when a required field is
    missing. Skip matches no field at all, and fails none, when `value` is not an object."""
    if kind_of(value) != OBJECT:
        return layers
    layers = list(layers)
    for field in fields:
        if field.name in value:
            found = list(_match(field.pattern, value[field.name]))
            if not found and field.optional:
                found = [_all_null(field.pattern)]
            layers.append(found)
        elif field.optional:
            layers.append([_all_null(field.pattern)])
        else:
            return []
    return layers


def _combine(layers: list[list[list[Binding]]]) -> Iterator[list[Binding]]:
    """The product of the layers: the first layer varies slowest, and each match lists the
    last layer's bindings first (Skip conses each field's bindings in front of the others)."""
    if not layers:
        return
    matches = layers[0]
    for layer in layers[1:]:
        matches = [bindings + earlier for earlier in matches for bindings in layer]
    yield from matches


def _all_null(pattern: Pattern, acc: list[Binding] | None = None) -> list[Binding]:
    """What a missing optional field binds: null for its variables, latest first.

    Ported with Skip's slip: an array pattern starts afresh, so its variables replace those of
    the fields before it in the same object (`{?a: {b: x, c[]: y}}` binds only y to null).
    """
    acc = acc or []
    if isinstance(pattern, Var):
        return [(pattern.name, None), *acc]
    if isinstance(pattern, ArrayPattern):
        return _all_null(pattern.item)
    for field in (pattern.special, *pattern.fields):
        if field is not None:
            acc = _all_null(field.pattern, acc)
    return acc


def _walk(value: Json, path: list[PathStep]) -> Iterator[tuple[list[PathStep], Json]]:
    """Every value under `value` (itself first, with the empty path), depth first, object fields
    in name order."""
    yield path, value
    kind = kind_of(value)
    if kind == ARRAY:
        for index, item in enumerate(value):
            yield from _walk(item, [*path, index])
    elif kind == OBJECT:
        for name in sorted(value):
            yield from _walk(value[name], [*path, name])


def _covers(pattern: Pattern, path: list[PathStep]) -> bool:
    """Whether the pattern's fixed fields reach the value at `path` (or a value around it):
    such values are not offered to the `%` field."""
    for step in path:
        if isinstance(pattern, Var):
            return True
        if isinstance(pattern, ObjectPattern) and isinstance(step, str):
            if pattern.special is not None:
                # Skip's matcher stops on an invariant there.
                raise _NestedSpecialError(pattern.special.at)
            field = pattern.get(step)
            if field is None:
                return False
            pattern = field.pattern
        elif isinstance(pattern, ArrayPattern) and isinstance(step, int):
            pattern = pattern.item
        else:
            return False
    return True


def _path_text(path: list[PathStep]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


class LikePattern:
    """SQL LIKE with `[]` for any index (Skip's pathMatch): `%` stands for any text, and the
    text between the brackets of `[]` must be digits.

    Ported as Skip has it, loose end included: the first and last pieces are checked at the
    ends of the text apart from the search for all pieces in order, which stops as soon as they
    are found, so `abc` matches `abcabc`.
    """

    __slots__ = ("_arrays", "_ends_free", "_pieces", "_starts_free")

    def __init__(self, pattern: str, with_arrays: bool = True) -> None:
        pieces: list[str] = []
        arrays: set[int] = set()  # pieces that follow a `[` and must be reached over digits
        piece: list[str] = []
        last = " "
        for char in pattern:
            if char == "%" or (with_arrays and last == "[" and char == "]"):
                if piece:
                    pieces.append("".join(piece))
                    piece = []
                    if with_arrays and char == "]":
                        arrays.add(len(pieces))
                        piece.append(char)
                last = char
                continue
            last = char
            piece.append(char)
        if piece:
            pieces.append("".join(piece))
        self._pieces = pieces
        self._arrays = arrays
        self._starts_free = pattern.startswith("%")
        self._ends_free = pattern.endswith("%")

    def matches(self, text: str) -> bool:
        pieces = self._pieces
        if not self._starts_free or not self._ends_free:
            if not pieces:
                return not text
            if not self._starts_free and not text.startswith(pieces[0]):
                return False
            if not self._ends_free and not _occurs(pieces[-1], text, len(text) - len(pieces[-1])):
                return False
        index = position = 0
        while index < len(pieces):
            if position == len(text):
                return False
            if _occurs(pieces[index], text, position):
                position += len(pieces[index])
                index += 1
                continue
            if index == 0 and not self._starts_free:
                return False
            if index in self._arrays and not "0" <= text[position] <= "9":
                return False
            position += 1
        return True


@functools.lru_cache(maxsize=256)
def _like(pattern: str) -> LikePattern:
    return LikePattern(pattern)


def _occurs(piece: str, text: str, position: int) -> bool:
    # Skip's isSub: `piece` at `position`, which is clamped to 0 (a piece longer than the text).
    return text.startswith(piece, max(0, position))


def _fresh(value: Json) -> Json:
    """A copy of `value` with object fields in name order (as Skip's objects keep them)."""
    kind = kind_of(value)
    if kind == ARRAY:
        return [_fresh(item) for item in value]
    if kind == OBJECT:
        return {name: _fresh(value[name]) for name in sorted(value)}
    return value
