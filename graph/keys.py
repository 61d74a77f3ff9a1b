"""JSON keys: a hashable canonical form and the total order of docs/protocol.md.

Python dicts cannot hold lists or objects as keys, and `True == 1` would merge the JSON keys
`true` and `1`. Every key therefore lives inside the engine in a canonical hashable form (`HKey`):
strings, non-boolean numbers and `null` are themselves (the common case costs nothing), booleans
become two sentinels, arrays become tuples and objects become tuples tagged with a private marker
that no JSON value can contain.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, Final, cast

from graph.errors import NotJsonError

Json = Any
HKey = Hashable


class _BoolKey:
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"

    def __reduce__(self) -> str:
        return "TRUE_KEY" if self.value else "FALSE_KEY"


TRUE_KEY: Final = _BoolKey(True)
FALSE_KEY: Final = _BoolKey(False)


class _ObjectMark:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<object>"


OBJECT_MARK: Final = _ObjectMark()

# Ranks of the JSON types in the total order: null < false < true < numbers < strings < arrays
# < objects. false and true share a rank and differ by their second element.
_NULL, _BOOL, _NUM, _STR, _ARR, _OBJ = range(6)


# The integers orjson (the wire codec) can write; anything beyond could never be published.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1
MAX_DEPTH: Final = 200


def _check_int(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise NotJsonError(f"integer {value} is outside the 64-bit range JSON is exchanged in")
    return value


def _check_float(value: float) -> float:
    if not math.isfinite(value):
        raise NotJsonError(f"{value!r} is not a JSON number")
    return value


def _check_str(value: str) -> str:
    # A lone surrogate cannot be written as UTF-8: no JSON text can carry it.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise NotJsonError(f"string {value!r} is not valid unicode (lone surrogate)") from err
    return value


def hkey(key: Json, depth: int = 0) -> HKey:
    """The canonical hashable form of a JSON key; raises NotJsonError for anything else.

    Numbers are canonical: an integral float within the integer range becomes an int, so that
    1 and 1.0 (one JSON number, one key) always read back the same way whichever was written.
    """
    t = type(key)
    if t is str:
        return _check_str(key)
    if t is int:
        return _check_int(key)
    if t is float:
        _check_float(key)
        # Every float equal to an int a key may be becomes that int (beyond, ints are refused).
        if key.is_integer() and INT_MIN <= key <= INT_MAX:
            return int(key)
        return cast(float, key)
    if key is None:
        return None
    if t is bool:
        return TRUE_KEY if key else FALSE_KEY
    if depth >= MAX_DEPTH:
        raise NotJsonError(f"key nested deeper than {MAX_DEPTH} levels")
    if t is list or t is tuple:
        return tuple([hkey(k, depth + 1) for k in key])
    if t is dict:
        parts: list[Any] = [OBJECT_MARK]
        for name in sorted(key, key=_name_order):
            parts.append(_check_str(name))
            parts.append(hkey(key[name], depth + 1))
        return tuple(parts)
    raise NotJsonError(f"{key!r} ({t.__name__}) is not JSON")


def _name_order(name: Any) -> str:
    if type(name) is not str:
        raise NotJsonError(f"object key {name!r} is not a string")
    return name


def unkey(h: HKey) -> Json:
    """The JSON value of a canonical key (inverse of `hkey`)."""
    t = type(h)
    if t is str or t is int or t is float or h is None:
        return h
    if h is TRUE_KEY:
        return True
    if h is FALSE_KEY:
        return False
    assert isinstance(h, tuple)
    if h and h[0] is OBJECT_MARK:
        return {h[i]: unkey(h[i + 1]) for i in range(1, len(h), 2)}
    # Arrays of strings and numbers (composite keys like [-score, id]) are the common case.
    return [x if type(x) in _PLAIN else unkey(x) for x in h]


_PLAIN: Final = frozenset((str, int, float))


def sort_key(h: HKey) -> tuple[Any, ...]:
    """A tuple whose natural order is docs/protocol.md's key order, for a canonical key."""
    t = type(h)
    if t is str:
        return (_STR, h)
    if t is int or t is float:
        return (_NUM, h)
    if h is None:
        return (_NULL,)
    if h is FALSE_KEY:
        return (_BOOL, 0)
    if h is TRUE_KEY:
        return (_BOOL, 1)
    assert isinstance(h, tuple)
    if h and h[0] is OBJECT_MARK:
        # Objects compare by their sorted (name, value) pairs, pair by pair.
        return (_OBJ, tuple((h[i], sort_key(h[i + 1])) for i in range(1, len(h), 2)))
    return (_ARR, tuple([sort_key(x) for x in h]))


def json_sort_key(key: Json) -> tuple[Any, ...]:
    """Sort key for a plain JSON key (convenience for callers outside the engine)."""
    return sort_key(hkey(key))


def check_json(value: Json, depth: int = 0) -> None:
    """Raise NotJsonError unless `value` is JSON (finite numbers, string object keys)."""
    t = type(value)
    if t is str:
        _check_str(value)
        return
    if t is int:
        _check_int(value)
        return
    if t is bool or value is None:
        return
    if t is float:
        _check_float(value)
        return
    if depth >= MAX_DEPTH:
        raise NotJsonError(f"value nested deeper than {MAX_DEPTH} levels")
    if t is list or t is tuple:
        for item in value:
            check_json(item, depth + 1)
        return
    if t is dict:
        for name, item in value.items():
            if type(name) is not str:
                raise NotJsonError(f"object key {name!r} is not a string")
            _check_str(name)
            check_json(item, depth + 1)
        return
    raise NotJsonError(f"{value!r} ({t.__name__}) is not JSON")


def same_json(a: Json, b: Json) -> bool:
    """JSON equality: Python's `==` alone would take `true` for `1` and `1.0` for `1`.

    Arrays compare equal whether lists or tuples; everything else must match in type.
    """
    if a is b:
        return True
    return bool(a == b) and _same_types(a, b)


def _same_types(a: Json, b: Json) -> bool:
    # Only called on values already known to be `==`.
    ta, tb = type(a), type(b)
    if ta is list or ta is tuple:
        if tb is not list and tb is not tuple:
            return False
        return all(x is y or _same_types(x, y) for x, y in zip(a, b, strict=True))
    if ta is not tb:
        return False
    if ta is dict:
        return all(_same_types(item, b[name]) for name, item in a.items())
    return True
