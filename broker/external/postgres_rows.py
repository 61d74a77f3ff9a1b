"""Rows as JSON: how a connection decodes PostgreSQL values, and rows grouped by key.

A value of the collection is the row as a JSON object, column name → value. Like Skip's adapter
(node-postgres with its TIMESTAMP and TIMESTAMPTZ parsers replaced by the identity), date and
time types arrive as PostgreSQL prints them — `2024-01-02 01:04:05.5+00` for a TIMESTAMPTZ: ISO
style (the adapter's sessions set DateStyle=ISO), in the session's TimeZone (the server's,
unless the DSN sets another) — and so do numeric (exact, as node-postgres gives it), interval and
bytea (`\\x0102`). json and jsonb are parsed; arrays become lists; integers, floats, booleans
and strings are themselves (bigint too: Python has no precision to lose, so unlike
node-postgres it is not a string); anything else (uuid, inet, ranges...) becomes its text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from broker.json_bytes import loads
from broker.types import Entry, Json

#: pg_catalog types decoded from their text form, unchanged.
TEXT_TYPES: Final = (
    "timestamp",
    "timestamptz",
    "date",
    "time",
    "timetz",
    "interval",
    "numeric",
    "bytea",
)
JSON_TYPES: Final = ("json", "jsonb")
#: Session settings of the adapter's connections.
SERVER_SETTINGS: Final = {"DateStyle": "ISO", "application_name": "skiff-postgres"}

_PLAIN: Final = frozenset({str, int, float, bool, type(None), dict})


async def configure_codecs(connection: Any) -> None:
    """Install the decoders above on an asyncpg connection."""
    for name in TEXT_TYPES:
        await connection.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=str, format="text"
        )
    for name in JSON_TYPES:
        await connection.set_type_codec(
            name, schema="pg_catalog", encoder=str, decoder=loads, format="text"
        )


def json_value(value: Any) -> Json:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def rows_by_key(
    records: Sequence[Any], parse_key: Callable[[str], Json]
) -> tuple[dict[Json, list[Json]], list[Exception]]:
    """Group records (column 0: the key as text, then the row's columns) by key. A key that
    does not parse is left out, with its error returned."""
    grouped: dict[Json, list[Json]] = {}
    errors: list[Exception] = []
    if not records:
        return grouped, errors
    names = list(records[0].keys())[1:]
    for record in records:
        values = tuple(record)
        if values[0] is None:
            continue  # a NULL key names no entry (its notifications are not sent either)
        try:
            key = parse_key(values[0])
        except ValueError as err:
            errors.append(err)
            continue
        row = {name: json_value(value) for name, value in zip(names, values[1:], strict=True)}
        grouped.setdefault(key, []).append(row)
    return grouped, errors


def entries(grouped: dict[Json, list[Json]], keys: Iterable[Json] = ()) -> list[Entry]:
    """The entries of `grouped`, and `[]` for each of `keys` it does not hold (deleted)."""
    out: list[Entry] = list(grouped.items())
    out.extend((key, []) for key in keys if key not in grouped)
    return out
