"""json_extract's patterns: their syntax tree and parser (Skip's SKJSON PatternParser).

    top      := pattern | special-field              (a special field alone: `%.a: a`)
    pattern  := var ('<' type '>')?                  (binds the value; type: pattern_types.py)
              | '[' ']'                              (any array; binds nothing)
              | '[' pattern ']'                      (every element, one match each)
              | '{' (field (',' field)* ','?)? '}'   (an object; `{}` only the empty one)
    field    := '?'? name ':' pattern                (`?`: a missing field binds null)
              | '?'? name ('<' type '>')?            (`{id}` is `{id: id}`)
    name     := path | '"' chars '"' | like
    path     := key ('.' key | '[' digits? ']')*     (`a.b[0][]: x`: `[]` is every element)
    like     := any name with a `%`                  (SQL LIKE on the paths under the object)
    var      := a letter or `_`, then letters, digits, `_`

Blanks are ignored everywhere, inside names too. A quoted name is taken literally (`"a.b"`
is one field). A key ends at any punctuation, `_` and `-` included, so an unquoted field name
like `user_id` is refused (`{"user_id": user_id}` is fine): Skip's parser never returns from it.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace
from typing import Final

from graph.errors import PatternError
from graph.json_extract.lexer import Lexer
from graph.json_extract.pattern_types import JsonType, parse_type

#: The variable `[]` and `{}` bind: Skip removes names starting with `^` from matches.
HIDDEN: Final = "^"

_NAME_ENDS: Final = frozenset(':,"<>?]{}')
_DIGITS: Final = frozenset("0123456789")

# One step of a field's path: a field name, an index, or None for `[]` (every index).
Step = str | int | None


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    type: JsonType | None = None


@dataclass(frozen=True, slots=True)
class ArrayPattern:
    index: int | None  # None: every element
    item: Pattern


@dataclass(frozen=True, slots=True)
class FieldPattern:
    optional: bool
    name: str
    pattern: Pattern
    at: int = 0  # where the name starts in the pattern, for errors found while matching


@dataclass(frozen=True, slots=True)
class ObjectPattern:
    special: FieldPattern | None  # the field whose name has a `%`, matched against paths
    fields: tuple[FieldPattern, ...]  # sorted by name, no two alike

    def get(self, name: str) -> FieldPattern | None:
        for field in self.fields:
            if field.name == name:
                return field
        return None


Pattern = Var | ArrayPattern | ObjectPattern


@functools.lru_cache(maxsize=512)
def parse_pattern(text: str) -> Pattern:
    """The syntax tree of `text`; raises PatternError. Cached: mappers reuse a few patterns."""
    return _Parser(text).top()


def is_var_name(name: str) -> bool:
    # Skip's isValidColumnName (a SQL column name), which accepts the empty name.
    if not name:
        return True
    if not (name[0] == "_" or _is_letter(name[0])):
        return False
    return all(c == "_" or _is_letter(c) or c in _DIGITS for c in name[1:])


def _is_letter(char: str) -> bool:
    return "a" <= char <= "z" or "A" <= char <= "Z"


class _Parser:
    __slots__ = ("lex",)

    def __init__(self, text: str) -> None:
        self.lex = Lexer(text)

    def top(self) -> Pattern:
        lex = self.lex
        char = lex.next()
        if char is None:
            raise lex.error("expected a pattern")
        lex.back(char)
        result: Pattern
        if char == "%":
            # Kept as written: the `%` pattern is not normalised like an object's fields are.
            _, field, _ = self.field()
            result = ObjectPattern(field, ())
        else:
            result = self.pattern()
        char = lex.next()
        if char is not None:
            raise lex.error(f"unexpected {char!r} after the pattern")
        return result

    def pattern(self) -> Pattern:
        lex = self.lex
        char = lex.next()
        if char is None:
            raise lex.error("expected a pattern")
        if char == "[":
            after = lex.next()
            if after is None:
                raise lex.error("expected ']'")
            if after == "]":
                return ArrayPattern(None, Var(HIDDEN))
            lex.back(after)
            item = self.pattern()
            lex.expect("]")
            return ArrayPattern(None, item)
        if char == "{":
            start = lex.position
            return _object(self.fields(), lex.text, start)
        lex.back(char)
        start = lex.position
        name = self.name()
        if not is_var_name(name):
            raise lex.error(f"{name!r} is not a variable name", start)
        char = lex.next()
        if char is None:
            return Var(name)
        if char == "<":
            ty = parse_type(lex)
            lex.expect(">")
            return Var(name, ty)
        if char in "]},":
            lex.back(char)
            return Var(name)
        raise lex.error(f"unexpected {char!r} after the variable {name!r}")

    def fields(self) -> dict[str, tuple[FieldPattern, int]]:
        # Keyed by the name as written: a repeated name replaces the earlier field, as in Skip.
        fields: dict[str, tuple[FieldPattern, int]] = {}
        lex = self.lex
        while True:
            char = lex.next()
            if char is None:
                raise lex.error("expected a field or '}'")
            if char == "}":
                return fields
            lex.back(char)
            written, field, start = self.field()
            fields[written] = (field, start)
            char = lex.next()
            if char == "}":
                return fields
            if char != ",":
                raise lex.error("expected ',' or '}'")

    def field(self) -> tuple[str, FieldPattern, int]:
        """A field as written: its name (a quoted one keeps its opening quote), the field, and
        where its name starts."""
        lex = self.lex
        char = lex.next()
        optional = char == "?"
        if char is not None and not optional:
            lex.back(char)
        char = lex.next()
        if char is None:
            raise lex.error("expected a field name")
        start = lex.position
        if char == '"':
            name = '"' + lex.string()
        else:
            lex.back(char)
            name = self.name()
        if name.startswith("["):
            raise lex.error(f"a field name cannot start with '[' ({name!r})", start)
        char = lex.next()
        pattern: Pattern
        if char == ":":
            pattern = self.pattern()
        elif char is not None and char in ",<}":
            if not is_var_name(name):
                raise lex.error(f"the field {name!r} needs a variable: write '{name}: var'", start)
            ty = None
            if char == "<":
                ty = parse_type(lex)
                lex.expect(">")
            else:
                lex.back(char)
            pattern = Var(name, ty)
        else:
            raise lex.error("expected ':'")
        return name, FieldPattern(optional, name, pattern, start), start

    def name(self) -> str:
        """A field or variable name: up to a delimiter; `[...]` may hold digits and `%`."""
        lex = self.lex
        chars: list[str] = []
        while True:
            char = lex.next()
            if char is None:
                return "".join(chars)
            if char in _NAME_ENDS:
                lex.back(char)
                return "".join(chars)
            chars.append(char)
            if char == "[":
                while True:
                    char = lex.next()
                    if char is None:
                        raise lex.error("expected ']'")
                    if char != "%" and char != "]" and char not in _DIGITS:
                        raise lex.error(f"unexpected {char!r} in an index")
                    chars.append(char)
                    if char == "]":
                        break


def _object(written: dict[str, tuple[FieldPattern, int]], text: str, start: int) -> ObjectPattern:
    """An object pattern from its fields as written (Skip's PatFields.create): a quoted name is
    literal, a `%` name is the special field, a path `a.b[]` becomes nested patterns."""
    special: FieldPattern | None = None
    fields: list[FieldPattern] = []
    for name, (field, at) in written.items():
        if name.startswith('"'):
            fields.append(replace(field, name=name[1:]))
        elif "%" in name:
            if special is not None:
                raise PatternError("only one field name may have a '%'", text, at)
            special = field
        else:
            fields.append(_nest(field, _path(name, text, at), text, at))
    fields.sort(key=lambda f: f.name)
    for before, after in itertools.pairwise(fields):
        if before.name == after.name:
            raise PatternError(f"the field {after.name!r} is matched twice", text, start)
    return ObjectPattern(special, tuple(fields))


def _path(name: str, text: str, at: int) -> list[Step]:
    lex = Lexer(name, source=text, offset=at)
    steps: list[Step] = []
    while True:
        char = lex.next()
        if char is None:
            return steps
        if char == "[":
            digits: list[str] = []
            while (char := lex.next()) != "]":
                if char is None or char not in _DIGITS:
                    raise lex.error(f"bad index in the field name {name!r}")
                digits.append(char)
            steps.append(int("".join(digits)) if digits else None)
            continue
        dotted = char == "."
        if dotted:
            char = lex.next()
            if char is None:
                raise lex.error(f"expected a name after '.' in the field name {name!r}")
        lex.back(char)
        key = lex.keyword()
        if not key and not dotted:
            # Skip's parser would call itself on this character forever (`user_id`, `a-b`).
            raise lex.error(f"the field name {name!r} cannot hold {char!r} unquoted; quote it")
        steps.append(key)


def _nest(field: FieldPattern, path: list[Step], text: str, at: int) -> FieldPattern:
    """`a.b[]: x` as `a: {b: [x]}`; a `?` applies at every level."""
    if not path:
        raise PatternError("empty field name", text, at)
    pattern = field.pattern
    for step in reversed(path[1:]):
        if isinstance(step, str):
            pattern = ObjectPattern(None, (FieldPattern(field.optional, step, pattern, at),))
        else:
            pattern = ArrayPattern(step, pattern)
    first = path[0]
    assert isinstance(first, str)  # a name never starts with '['
    return FieldPattern(field.optional, first, pattern, at)
