"""Helpers of the PostgreSQL adapter's tests: callbacks that record, the posts table, and what
the adapter installed in a database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.types import Entry, Json
from tests.support.polling import eventually

BY_ID = {"key": {"col": "id", "type": "SERIAL"}}


class Recorder:
    """ExternalCallbacks that keep every call and the content they add up to."""

    def __init__(self) -> None:
        self.updates: list[tuple[list[Entry], bool]] = []
        self.errors: list[object] = []
        self.loadings = 0
        self.content: dict[Json, list[Json]] = {}

    def update(self, entries: Sequence[Entry], is_init: bool) -> None:
        self.updates.append((list(entries), is_init))
        if is_init:
            self.content = {}
        for key, values in entries:
            if values:
                self.content[key] = values
            else:
                self.content.pop(key, None)

    def error(self, reason: object) -> None:
        self.errors.append(reason)

    def loading(self) -> None:
        self.loadings += 1

    def rows(self) -> dict[Json, list[Json]]:
        """The content with each key's rows in a stable order (a query gives them unordered)."""
        return {key: sorted(rows, key=repr) for key, rows in self.content.items()}

    async def reaches(self, expected: dict[Json, list[Json]], within: float = 5.0) -> None:
        want = {key: sorted(rows, key=repr) for key, rows in expected.items()}
        try:
            await eventually(lambda: self.rows() == want, within=within)
        except AssertionError:
            assert self.rows() == want  # shows the difference
            raise


async def make_posts(pg: Any) -> None:
    await pg.execute(
        """CREATE TABLE posts (
             id SERIAL PRIMARY KEY, author INT NOT NULL, title TEXT,
             at TIMESTAMPTZ, meta JSONB, score NUMERIC(6, 2))"""
    )


def post(id: int, author: int, title: str, **more: Any) -> dict[str, Any]:
    """A row of `posts` as the adapter delivers it."""
    row = {"id": id, "author": author, "title": title, "at": None, "meta": None, "score": None}
    return row | more


async def installed(pg: Any) -> tuple[list[str], list[str]]:
    """The adapter's functions and every user trigger in the database."""
    functions = await pg.fetch(r"SELECT proname FROM pg_proc WHERE proname LIKE 'skiff\_%'")
    triggers = await pg.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    return sorted(r[0] for r in functions), sorted(r[0] for r in triggers)


async def nothing_installed(pg: Any) -> bool:
    return await installed(pg) == ([], [])


async def trigger_count_is(pg: Any, n: int) -> bool:
    return len((await installed(pg))[1]) == n


async def waiting_for_a_lock(pg: Any) -> bool:
    return bool(await pg.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"))


async def adapter_sessions_are(pg: Any, n: int) -> bool:
    count = await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'skiff-postgres'"
    )
    return bool(count == n)
