"""Who owns the objects a PostgreSQL adapter installed, so that those of an adapter that died
(a crashed or killed process: its `shutdown()` never ran) do not fire for nobody forever.

Each adapter (PostgresExternalService) has a random owner key. While connected, its session
holds the session-level advisory lock (`OWNER_LOCK_SPACE`, key), which PostgreSQL releases
when the session ends, however it ends; each function it installs carries the key in its
comment. On every connection an adapter looks for functions of other owners whose lock it can
take: nobody holds it, so their owner is gone, and it drops them (and, by CASCADE, their
triggers). An owner that was only disconnected finds its objects gone when it comes back and
installs them again before it reads its tables whole, so nothing is lost either way. A key
shared by two owners (a 1 in 2³² collision) only delays the cleanup.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Final

from broker.external.postgres_sql import OWNER_COMMENT_PREFIX, drop_sql, quote_ident

logger = logging.getLogger("skiff.broker.external.postgres")

#: The first key of the advisory locks of adapters ("skif").
OWNER_LOCK_SPACE: Final = 0x736B6966

FIND_OWNED_SQL: Final = rf"""
SELECT n.nspname, p.proname, d.description
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_description d
  ON d.objoid = p.oid AND d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objsubid = 0
WHERE p.proname LIKE 'skiff\_%' AND d.description LIKE '{OWNER_COMMENT_PREFIX}%'
"""


def owner_key(token: str) -> int:
    """A 32-bit signed key (advisory locks take int4 pairs) from an adapter's token."""
    digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def claim(conn: Any, owner: int) -> None:
    """Hold `owner`'s lock for as long as `conn` lives."""
    await conn.execute("SELECT pg_catalog.pg_advisory_lock($1, $2)", OWNER_LOCK_SPACE, owner)


async def drop_orphans(conn: Any, owner: int, lock_timeout_s: float, errors: type[Any]) -> None:
    """Drop the functions (and triggers) of owners that are gone; `errors` (the driver's
    PostgresError) from one owner's drop are logged, and the others still tried."""
    owned: dict[int, list[str]] = {}
    for schema, name, comment in await conn.fetch(FIND_OWNED_SQL):
        key = comment.removeprefix(OWNER_COMMENT_PREFIX)
        if key.lstrip("-").isdigit() and int(key) != owner:
            owned.setdefault(int(key), []).append(f"{quote_ident(schema)}.{quote_ident(name)}")
    for other, functions in owned.items():
        taken = await conn.fetchval(
            "SELECT pg_catalog.pg_try_advisory_lock($1, $2)", OWNER_LOCK_SPACE, other
        )
        if not taken:
            continue  # alive
        try:
            async with conn.transaction():
                await conn.execute(drop_sql(functions, lock_timeout_s))
            logger.info("postgres: dropped %s, left by an adapter that is gone", functions)
        except errors as err:
            logger.warning("postgres: cannot drop %s, left behind: %s", functions, err)
        finally:
            await conn.execute(
                "SELECT pg_catalog.pg_advisory_unlock($1, $2)", OWNER_LOCK_SPACE, other
            )
