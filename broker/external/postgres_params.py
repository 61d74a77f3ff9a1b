"""What a PostgreSQL subscription asks for, checked before anything touches the database, and
the errors of the PostgreSQL adapter.

`resource` is a table name (one identifier, found through the connection's search_path, as
Skip's adapter takes it) and `params` is Skip's: `{"key": {"col": "id", "type": "SERIAL"},
"syncHistoricData": true}`. The key types are Skip's (`validateKeyParam` in
@skip-adapter/postgres): TEXT and the integer and serial types, each integer type with the
bounds its keys must respect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from broker.errors import UnavailableError
from broker.external.errors import ExternalServiceError
from broker.types import Json


class PostgresAdapterError(ExternalServiceError):
    """Root of the PostgreSQL adapter's errors."""


class InvalidPostgresParamsError(PostgresAdapterError, ValueError):
    """The resource or its params are not a valid subscription: a missing or malformed key, an
    unsupported key type, or a table or column that does not exist or does not fit."""


class PostgresSubscribeError(PostgresAdapterError):
    """The database refused to set a subscription up (privileges, locks, a closed service)."""


class PostgresUnavailableError(PostgresAdapterError, UnavailableError):
    """PostgreSQL cannot be reached, or the connection was lost (the adapter reconnects)."""


class InvalidPostgresKeyError(PostgresAdapterError, ValueError):
    """A key read from the table does not fit the declared key type (Skip's bounds check)."""


_INT16: Final = (-(2**15), 2**15 - 1)
_INT32: Final = (-(2**31), 2**31 - 1)
_INT64: Final = (-(2**63), 2**63 - 1)

#: Skip's key types and the bounds of their keys (None: TEXT, any string).
KEY_TYPES: Final[dict[str, tuple[int, int] | None]] = {
    "TEXT": None,
    "BIGINT": _INT64,
    "INT8": _INT64,
    "INTEGER": _INT32,
    "INT": _INT32,
    "INT4": _INT32,
    "SMALLINT": _INT16,
    "INT2": _INT16,
    "BIGSERIAL": (1, _INT64[1]),
    "SERIAL8": (1, _INT64[1]),
    "SERIAL": (1, _INT32[1]),
    "SERIAL4": (1, _INT32[1]),
    "SMALLSERIAL": (1, _INT16[1]),
    "SERIAL2": (1, _INT16[1]),
}

_PARAM_NAMES: Final = frozenset({"key", "syncHistoricData"})
_INTEGER_TEXT: Final = re.compile(r"-?[0-9]+")
# PostgreSQL truncates longer identifiers (NAMEDATALEN - 1): a longer name would silently
# name another table or column.
_MAX_IDENTIFIER_BYTES: Final = 63


@dataclass(frozen=True, slots=True)
class KeyColumn:
    """The column whose values key the collection, and how its text form becomes a key."""

    col: str
    type: str
    bounds: tuple[int, int] | None

    @property
    def is_text(self) -> bool:
        return self.bounds is None

    def parse(self, text: str) -> Json:
        """The key of a row from the column's text form (`col::text`): the text itself for
        TEXT, an int within the type's bounds otherwise."""
        if self.bounds is None:
            return text
        if _INTEGER_TEXT.fullmatch(text) is None:
            raise InvalidPostgresKeyError(f"invalid {self.type} key: {text[:80]!r}")
        value = int(text)
        low, high = self.bounds
        if not low <= value <= high:
            raise InvalidPostgresKeyError(f"{self.type} key out of range: {value}")
        return value


@dataclass(frozen=True, slots=True)
class PostgresParams:
    """A validated subscription: `table` keyed by `key`; `sync_historic`: deliver the rows
    present at subscription (Skip's `syncHistoricData`, true by default) or only later ones."""

    table: str
    key: KeyColumn
    sync_historic: bool = True

    @classmethod
    def from_json(cls, resource: str, params: Json) -> PostgresParams:
        table = _identifier(resource, "the resource (a table name)")
        if not isinstance(params, dict) or not isinstance(params.get("key"), dict):
            raise InvalidPostgresParamsError(
                'no key specified for the PostgreSQL table: params need "key": '
                '{"col": <column>, "type": <type>}'
            )
        unknown = sorted(set(params) - _PARAM_NAMES)
        if unknown:
            raise InvalidPostgresParamsError(
                f"unknown params {unknown}: expected {sorted(_PARAM_NAMES)}"
            )
        key = params["key"]
        if not isinstance(key.get("col"), str):
            raise InvalidPostgresParamsError('no key column specified ("key": {"col": ...})')
        col = _identifier(key["col"], "the key column")
        key_type = key.get("type")
        if not isinstance(key_type, str):
            raise InvalidPostgresParamsError('no key type specified ("key": {"type": ...})')
        if key_type not in KEY_TYPES:
            raise InvalidPostgresParamsError(
                f"unsupported PostgreSQL key type {key_type!r}: one of {', '.join(KEY_TYPES)}"
            )
        sync = params.get("syncHistoricData", True)
        if not isinstance(sync, bool):
            raise InvalidPostgresParamsError(f"syncHistoricData must be a boolean, not {sync!r}")
        return cls(table, KeyColumn(col, key_type, KEY_TYPES[key_type]), sync)


def _identifier(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidPostgresParamsError(f"{what} must be a non-empty string, not {name!r}")
    if "\x00" in name:
        raise InvalidPostgresParamsError(f"{what} contains a NUL character")
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise InvalidPostgresParamsError(
            f"{what} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES}-byte identifiers: "
            f"{name[:80]!r}"
        )
    return name
