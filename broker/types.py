"""The shape aliases every room of broker (and the proxy) shares."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A JSON value as orjson reads it (dict, list, str, int, float, bool or None).
Json: TypeAlias = Any
#: One `[key, [values...]]` entry of a collection (docs/protocol.md's wire shape).
Entry: TypeAlias = tuple[Json, list[Json]]
