"""The SQL of the PostgreSQL adapter, as pure functions: the names of what a subscription installs,
quoting, the trigger function, the queries, and the notification payloads.

Identifiers are always quoted (`quote_ident`), never interpolated raw: a table or column name
is data, whatever characters it holds. The trigger function's body is dollar-quoted with a tag
that does not occur in it, so no column name can close the quote early.

A subscription installs, in the schema of its table (Skip's design: a trigger per
subscription calling `pg_notify(channel, key::text)`):
- a function `skiff_<instance, readable>_<digest>()`, RETURNS trigger;
- a row trigger of the same name, AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW;
- a statement trigger `<name>_t`, AFTER TRUNCATE (row triggers do not fire on TRUNCATE);
and LISTENs on the channel of the same name. The digest covers the instance, the service's
random token and a per-subscription serial: two processes (or two subscriptions of one
instance, one ending while the next starts) never share names. Every name is ASCII
`[a-z0-9_]`, at most 63 bytes (PostgreSQL's identifier limit).

Payloads: `k<key as text>`: the rows of this key changed; `h<sha256 of the key text>`: the same
for a key too long for a NOTIFY payload (PostgreSQL refuses 8,000 bytes or more, which would
fail the writer's transaction); `*`: the table was truncated, read all of it again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal

#: Key texts up to this many bytes travel in the payload; longer ones as their digest.
MAX_KEY_PAYLOAD_BYTES: Final = 7900
NAME_PREFIX: Final = "skiff_"
_READABLE_CHARS: Final = 36
_DIGEST_BYTES: Final = 6
_NOT_READABLE: Final = re.compile(r"[^a-z0-9]+")


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier (PostgreSQL's quote_ident, always quoting)."""
    if "\x00" in name:
        raise ValueError("an identifier cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """`value` as a SQL string literal (standard_conforming_strings, PostgreSQL's default)."""
    if "\x00" in value or "\\" in value:
        raise ValueError("literal with NUL or backslash")
    return "'" + value.replace("'", "''") + "'"


def key_digest(key_text: str) -> str:
    """The digest a trigger sends for a long key: sha256 of its UTF-8 text, hex."""
    return hashlib.sha256(key_text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ObjectNames:
    """What one subscription installs: a function and two triggers, and the channel."""

    schema: str
    table: str
    base: str

    @property
    def function(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.base)}"

    @property
    def qualified_table(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def row_trigger(self) -> str:
        return self.base

    @property
    def truncate_trigger(self) -> str:
        return f"{self.base}_t"

    @property
    def channel(self) -> str:
        return self.base


def object_base_name(instance: str, salt: str) -> str:
    """`skiff_<instance, lower-case alphanumerics>_<digest of salt and instance>` (≤ 55 bytes)."""
    readable = _NOT_READABLE.sub("_", instance.lower()).strip("_")[:_READABLE_CHARS].strip("_")
    digest = hashlib.blake2b(
        f"{salt}\x00{instance}".encode(), digest_size=_DIGEST_BYTES
    ).hexdigest()
    return f"{NAME_PREFIX}{readable}_{digest}" if readable else f"{NAME_PREFIX}{digest}"


DESCRIBE_SQL: Final = """
SELECT n.nspname, c.relname, c.relkind::text AS relkind, a.attname,
       format_type(a.atttypid, a.atttypmod) AS column_type,
       CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS base_type
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a
  ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident($1))
"""

#: Table kinds a subscription can follow: ordinary and partitioned tables.
TABLE_KINDS: Final = ("r", "p")
#: int2, int4, int8: the columns an integer key type may name.
INTEGER_TYPE_OIDS: Final = (21, 23, 20)


#: The comment on an installed function: this prefix, then its owner's key
#: (postgres_owners.py: who may drop the objects of an adapter that died).
OWNER_COMMENT_PREFIX: Final = "skiff-postgres owner "


def install_sql(
    names: ObjectNames, col: str, owner: int, lock_timeout_s: float, *, or_replace: bool = True
) -> str:
    """The function (commented with its `owner`) and its triggers. Run it in a transaction, so
    that a failure leaves nothing behind. Idempotent (it also repairs a subscription whose
    objects vanished while the adapter was disconnected). Creating a trigger waits for the
    writers' open transactions on the table: at most `lock_timeout_s`, then it fails.

    `or_replace`: CREATE OR REPLACE TRIGGER (PostgreSQL 14+), which the TRIGGER privilege
    allows; before 14, an existing trigger is dropped first, which takes owning the table."""
    channel = quote_literal(names.channel)
    column = quote_ident(col)
    body = f"""
DECLARE
  old_key text;
  new_key text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_catalog.pg_notify({channel}, '*');
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    old_key := OLD.{column}::text;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    new_key := NEW.{column}::text;
  END IF;
  IF old_key IS NOT NULL THEN
    PERFORM pg_catalog.pg_notify({channel}, {_payload("old_key")});
  END IF;
  IF new_key IS NOT NULL AND new_key IS DISTINCT FROM old_key THEN
    PERFORM pg_catalog.pg_notify({channel}, {_payload("new_key")});
  END IF;
  RETURN NULL;
END
"""
    tag = _dollar_tag(body)
    table = names.qualified_table

    def trigger(name: str, when: str) -> str:
        if or_replace:
            return f"CREATE OR REPLACE TRIGGER {quote_ident(name)} {when}"
        drop = f"DROP TRIGGER IF EXISTS {quote_ident(name)} ON {table}"
        return f"{drop};\nCREATE TRIGGER {quote_ident(name)} {when}"

    row = f"AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW"
    truncate = f"AFTER TRUNCATE ON {table} FOR EACH STATEMENT"
    return f"""{_lock_timeout(lock_timeout_s)};
CREATE OR REPLACE FUNCTION {names.function}() RETURNS trigger LANGUAGE plpgsql
AS {tag}{body}{tag};
COMMENT ON FUNCTION {names.function}() IS {quote_literal(f"{OWNER_COMMENT_PREFIX}{owner}")};
{trigger(names.row_trigger, row)} EXECUTE FUNCTION {names.function}();
{trigger(names.truncate_trigger, truncate)} EXECUTE FUNCTION {names.function}();
"""


def _payload(var: str) -> str:
    return (
        f"CASE WHEN pg_catalog.octet_length({var}) <= {MAX_KEY_PAYLOAD_BYTES} "
        f"THEN 'k' || {var} ELSE 'h' || pg_catalog.encode("
        f"pg_catalog.sha256(pg_catalog.convert_to({var}, 'UTF8')), 'hex') END"
    )


def _dollar_tag(body: str) -> str:
    tag, n = "$skiff$", 0
    while tag in body:
        n += 1
        tag = f"$skiff{n}$"
    return tag


def drop_sql(functions: list[str], lock_timeout_s: float) -> str:
    """Drops functions (qualified, as `ObjectNames.function`) and, by CASCADE, their triggers
    (in a transaction: dropping a trigger waits for the table's lock, like creating one)."""
    listed = ", ".join(f"{function}()" for function in functions)
    return f"{_lock_timeout(lock_timeout_s)}; DROP FUNCTION IF EXISTS {listed} CASCADE"


def _lock_timeout(seconds: float) -> str:
    return f"SET LOCAL lock_timeout = {max(1, round(seconds * 1000))}"


def select_all_sql(names: ObjectNames, col: str) -> str:
    """Every row, each preceded by its key as text (column 0)."""
    return f"SELECT {quote_ident(col)}::text, * FROM {names.qualified_table}"


def select_keys_sql(names: ObjectNames, col: str, column_type: str, integer: bool) -> str:
    """The rows of the keys in $1 (an array of ints, or of key texts cast to the column's type,
    so an index on the column serves the lookup)."""
    keys = "$1::int8[]" if integer else f"($1::text[])::{column_type}[]"
    return f"{select_all_sql(names, col)} WHERE {quote_ident(col)} = ANY({keys})"


def select_digests_sql(names: ObjectNames, col: str) -> str:
    """The rows whose key text has one of the digests in $1 (long keys: a full scan, rare)."""
    column = quote_ident(col)
    return (
        f"{select_all_sql(names, col)} WHERE pg_catalog.encode(pg_catalog.sha256("
        f"pg_catalog.convert_to({column}::text, 'UTF8')), 'hex') = ANY($1::text[])"
    )


Payload = tuple[Literal["key", "digest", "all"], str]


def parse_payload(payload: str) -> Payload | None:
    """What a notification names, or None for a payload this adapter does not send."""
    if payload == "*":
        return ("all", "")
    if payload.startswith("k"):
        return ("key", payload[1:])
    if payload.startswith("h") and len(payload) == 65:
        return ("digest", payload[1:])
    return None
