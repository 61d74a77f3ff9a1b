"""Claims: the verified identity claims a resource instance is built with, and what it read.

A service that faces users builds some instances from who asks (`context.claims["sub"]`)
instead of trusting params. Two requests with equal (resource, params) may then need different
instances, or one shared instance, depending on what the build read of the claims: an instance
that read `sub` is alice's, one that read nothing serves everybody, exactly as before. So the
claims a build sees are a tracking view: every name looked up (present or not) is recorded with
the canonical JSON of its value, and an instance is reused for a later request only when that
request's claims give the same value for every recorded name (graph/resources/instance_keys.py).

The view in force is held in a ContextVar while the engine runs a resource's constructor and
`instantiate`: `Context.claims` and `Resource.claims` both read it. Anywhere else — create_graph,
mappers, lazy computes, which are shared or run later — the claims are empty: a resource passes
what it needs (the user id) to its mappers as an argument, as it does with params.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Final

import orjson

#: One claim as read by a build: (name, canonical JSON of its value; b"" when absent).
ClaimRead = tuple[str, bytes]
#: Everything a build read of its claims, sorted by name; () when it read nothing.
ClaimReads = tuple[ClaimRead, ...]

_ABSENT: Final = b""
#: The name recorded when a build iterated over the claims: it read all of them.
ALL: Final = "*"
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def canonical(value: Any) -> bytes:
    """A claim's value as canonical JSON (object members sorted)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # Not JSON (claims verified from a token always are): compared by its repr.
        return repr(value).encode()


def value_of(claims: Mapping[str, Any] | None, name: str) -> bytes:
    """What a build reading `name` would record for `claims`."""
    if name == ALL:
        return canonical(dict(claims or {}))
    if claims is None or name not in claims:
        return _ABSENT
    return canonical(claims[name])


class TrackedClaims(Mapping[str, Any]):
    """A read-only view of one build's claims that records every name read."""

    __slots__ = ("_claims", "_read")

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self._claims = claims
        self._read: dict[str, bytes] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._read:
            self._read[name] = value_of(self._claims, name)
        return self._claims[name]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name not in self._read:
            self._read[name] = value_of(self._claims, name)
        return name in self._claims

    def __iter__(self) -> Iterator[str]:
        # Listing the names reveals them all: the build depends on the whole set.
        self._read[ALL] = value_of(self._claims, ALL)
        return iter(self._claims)

    def __len__(self) -> int:
        self._read[ALL] = value_of(self._claims, ALL)
        return len(self._claims)

    def reads(self) -> ClaimReads:
        return tuple(sorted(self._read.items()))


def matches(reads: ClaimReads, claims: Mapping[str, Any] | None) -> bool:
    """Whether `claims` give every value in `reads` (a build with them would read the same)."""
    return all(value_of(claims, name) == value for name, value in reads)


_current: ContextVar[TrackedClaims | None] = ContextVar("skiff_build_claims", default=None)


def current_claims() -> Mapping[str, Any]:
    """The claims of the build in progress (empty outside one, or with auth off)."""
    view = _current.get()
    return EMPTY if view is None else view


@contextmanager
def building_with(view: TrackedClaims | None) -> Iterator[None]:
    """Make `view` the claims `Context.claims` and `Resource.claims` see in this block."""
    if view is None:
        yield
        return
    token = _current.set(view)
    try:
        yield
    finally:
        _current.reset(token)


class ClaimsAttribute:
    """`Resource.claims`: the claims of the build in progress, readable in the constructor.

    A non-data descriptor, so a subclass that assigns `self.claims` itself keeps working."""

    def __get__(self, instance: object, owner: type | None = None) -> Mapping[str, Any]:
        return current_claims()
