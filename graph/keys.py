"""JSON keys: a hashable canonical form and the total order of PROTOCOL.md.

Python dicts cannot hold lists or objects as keys, and `True == 1` would merge the JSON keys
`true` and `1`. Every key therefore lives inside the engine in a canonical hashable form (`HKey`):
strings, non-boolean numbers and `null` are themselves (the common case costs nothing), booleans
become two sentinels, arrays become tuples and objects become tuples tagged with a private marker
that no JSON value can contain.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, Final

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


def hkey(key: Json) -> HKey:
    """The canonical hashable form of a JSON key; raises NotJsonError for anything else."""
    t = type(key)
    if t is str:
        return key
    if t is int:
        return key
    if t is float:
        if not math.isfinite(key):
            raise NotJsonError(f"{key!r} is not a JSON number")
        return key
    if key is None:
        return None
    if t is bool:
        return TRUE_KEY if key else FALSE_KEY
    if t is list or t is tuple:
        return tuple(hkey(k) for k in key)
    if t is dict:
        parts: list[Any] = [OBJECT_MARK]
        for name in sorted(key):
            if type(name) is not str:
                raise NotJsonError(f"object key {name!r} is not a string")
            parts.append(name)
            parts.append(hkey(key[name]))
        return tuple(parts)
    raise NotJsonError(f"{key!r} ({t.__name__}) is not JSON")


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
    return [unkey(x) for x in h]


def sort_key(h: HKey) -> tuple[Any, ...]:
    """A tuple whose natural order is PROTOCOL.md's key order, for a canonical key."""
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
    return (_ARR, tuple(sort_key(x) for x in h))


def json_sort_key(key: Json) -> tuple[Any, ...]:
    """Sort key for a plain JSON key (convenience for callers outside the engine)."""
    return sort_key(hkey(key))


def check_json(value: Json, depth: int = 0) -> None:
    """Raise NotJsonError unless `value` is JSON (finite numbers, string object keys)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return
    if t is float:
        if not math.isfinite(value):
            raise NotJsonError(f"{value!r} is not a JSON number")
        return
    if depth > 200:
        raise NotJsonError("value nested deeper than 200 levels")
    if t is list or t is tuple:
        for item in value:
            check_json(item, depth + 1)
        return
    if t is dict:
        for name, item in value.items():
            if type(name) is not str:
                raise NotJsonError(f"object key {name!r} is not a string")
            check_json(item, depth + 1)
        return
    raise NotJsonError(f"{value!r} ({t.__name__}) is not JSON")
