"""JSON to and from bytes for HTTP bodies and SSE data: orjson's speed, the stdlib's range.

orjson refuses integers beyond 64 bits when encoding; user code may legitimately produce them
(Python ints are unbounded and the engine accepts them as JSON), so encoding falls back to the
stdlib rather than failing a tick that is already committed.
"""

from __future__ import annotations

import json

import orjson

from broker.errors import BrokerError
from broker.types import Json


class JsonDecodeError(BrokerError, ValueError):
    """The bytes are not one well-formed JSON document."""


def dumps(value: Json) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> Json:
    """Parse JSON. NaN and infinities are rejected; integers beyond 64 bits become floats."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise JsonDecodeError(str(err)) from err
