"""Size limits on what clients send, beyond the body size: params, keys and values.

Sizes are those of the compact JSON encoding. A request over a limit is refused with 413 and a
message naming the limit, before anything is applied.
"""

from __future__ import annotations

from typing import Any

from broker.http.errors import HttpError
from broker.json_bytes import dumps


def check_params(params: Any, limit: int) -> None:
    size = len(dumps(params))
    if size > limit:
        raise HttpError(413, f"params are {size} bytes of JSON, over the limit of {limit}")


def check_entries(entries: list[Any], max_key: int, max_value: int) -> None:
    """Each entry's key, and each of its values, within the limits (malformed entries are left
    for the engine's own validation to reject with 400)."""
    for i, entry in enumerate(entries):
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        key, values = entry
        size = len(dumps(key))
        if size > max_key:
            raise HttpError(
                413, f"entry {i}: key is {size} bytes of JSON, over the limit of {max_key}"
            )
        if isinstance(values, list):
            for value in values:
                size = len(dumps(value))
                if size > max_value:
                    raise HttpError(
                        413,
                        f"entry {i}: a value is {size} bytes of JSON, "
                        f"over the limit of {max_value}",
                    )
