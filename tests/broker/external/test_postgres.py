"""PostgresExternalService against a real PostgreSQL (tests/support/postgres.py): a table's
first content and its changes (INSERT, UPDATE, DELETE, TRUNCATE) as update entries — unique and
non-unique keys, integer and text keys, timestamps, quoted identifiers, two subscriptions of one
table, a burst."""

from __future__ import annotations

from typing import Any

import pytest

from broker.external import PostgresConfig, PostgresExternalService
from tests.support.polling import eventually
from tests.support.postgres_tables import (
    BY_ID,
    Recorder,
    installed,
    make_posts,
    post,
    trigger_count_is,
)

pytestmark = pytest.mark.timeout(30)


async def test_first_content_is_the_table_grouped_by_key(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    await pg.execute(
        """INSERT INTO posts (author, title, at, meta, score) VALUES
           (7, 'a', '2024-01-02 03:04:05.5+02', '{"tags": ["x"]}', 1.5),
           (7, 'b', NULL, NULL, NULL),
           (8, 'c', NULL, NULL, NULL)"""
    )
    by_author = Recorder()
    await pg_service.subscribe(
        "svc/by-author", "posts", {"key": {"col": "author", "type": "INT"}}, by_author
    )
    assert len(by_author.updates) == 1 and by_author.updates[0][1] is True
    first = post(1, 7, "a", at="2024-01-02 01:04:05.5+00", meta={"tags": ["x"]}, score="1.50")
    assert by_author.rows() == {
        7: sorted([first, post(2, 7, "b")], key=repr),
        8: [post(3, 8, "c")],
    }
    # Timestamps are PostgreSQL's own text, as Skip's adapter passes them on.
    assert first["at"] == await pg.fetchval("SELECT at::text FROM posts WHERE id = 1")


async def test_insert_update_delete_reach_the_callbacks(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    seen = Recorder()
    await pg_service.subscribe("svc/posts", "posts", BY_ID, seen)
    assert seen.updates == [([], True)]

    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'hello')")
    await eventually(lambda: len(seen.updates) == 2)
    assert seen.updates[1] == ([(1, [post(1, 1, "hello")])], False)

    await pg.execute(
        "UPDATE posts SET title = 'bye', at = '2025-06-01 12:00:00+00', score = 2 WHERE id = 1"
    )
    await eventually(lambda: len(seen.updates) == 3)
    changed = post(1, 1, "bye", at="2025-06-01 12:00:00+00", score="2.00")
    assert seen.updates[2] == ([(1, [changed])], False)

    await pg.execute("DELETE FROM posts WHERE id = 1")
    await eventually(lambda: len(seen.updates) == 4)
    assert seen.updates[3] == ([(1, [])], False)
    assert seen.errors == []


async def test_a_non_unique_key_carries_every_row_of_its_value(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    seen = Recorder()
    await pg_service.subscribe(
        "svc/by-author", "posts", {"key": {"col": "author", "type": "BIGINT"}}, seen
    )
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'a'), (1, 'b'), (2, 'c')")
    await seen.reaches({1: [post(1, 1, "a"), post(2, 1, "b")], 2: [post(3, 2, "c")]})

    # A row moving to another key changes both keys.
    await pg.execute("UPDATE posts SET author = 2 WHERE id = 2")
    await seen.reaches({1: [post(1, 1, "a")], 2: [post(2, 2, "b"), post(3, 2, "c")]})

    await pg.execute("DELETE FROM posts WHERE id = 1")
    await seen.reaches({2: [post(2, 2, "b"), post(3, 2, "c")]})
    assert seen.updates[-1] == ([(1, [])], False)


async def test_text_keys_of_any_content_and_length(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await pg.execute("CREATE TABLE users (name VARCHAR PRIMARY KEY, age INT)")
    await pg.execute("INSERT INTO users VALUES ('ann', 30)")
    seen = Recorder()
    await pg_service.subscribe("svc/users", "users", {"key": {"col": "name", "type": "TEXT"}}, seen)
    assert seen.rows() == {"ann": [{"name": "ann", "age": 30}]}

    odd = 'o\'brien "x" ; -- é日本\\'
    long = "L" * 10_000  # beyond a NOTIFY payload: notified by digest
    await pg.executemany("INSERT INTO users VALUES ($1, $2)", [(odd, 1), (long, 2)])
    await seen.reaches(
        {
            "ann": [{"name": "ann", "age": 30}],
            odd: [{"name": odd, "age": 1}],
            long: [{"name": long, "age": 2}],
        }
    )
    await pg.execute("UPDATE users SET age = 3 WHERE name = $1", long)
    await seen.reaches(
        {
            "ann": [{"name": "ann", "age": 30}],
            odd: [{"name": odd, "age": 1}],
            long: [{"name": long, "age": 3}],
        }
    )
    await pg.execute("DELETE FROM users WHERE age < 10")
    await seen.reaches({"ann": [{"name": "ann", "age": 30}]})
    assert seen.errors == []


async def test_without_historic_data_only_new_rows_arrive(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'old'), (1, 'older')")
    seen = Recorder()
    await pg_service.subscribe("svc/new", "posts", BY_ID | {"syncHistoricData": False}, seen)
    assert seen.updates == [([], True)]
    await pg.execute("INSERT INTO posts (author, title) VALUES (2, 'new')")
    await seen.reaches({3: [post(3, 2, "new")]})
    await pg.execute("DELETE FROM posts WHERE id = 3")
    await seen.reaches({})


async def test_two_subscriptions_of_one_table(pg: Any, pg_service: PostgresExternalService) -> None:
    await make_posts(pg)
    by_id, by_author = Recorder(), Recorder()
    await pg_service.subscribe("svc/by-id", "posts", BY_ID, by_id)
    await pg_service.subscribe(
        "svc/by-author", "posts", {"key": {"col": "author", "type": "INT"}}, by_author
    )
    assert len((await installed(pg))[1]) == 4
    await pg.execute("INSERT INTO posts (author, title) VALUES (5, 'a'), (5, 'b')")
    await by_id.reaches({1: [post(1, 5, "a")], 2: [post(2, 5, "b")]})
    await by_author.reaches({5: [post(1, 5, "a"), post(2, 5, "b")]})

    pg_service.unsubscribe("svc/by-id")
    await eventually(lambda: trigger_count_is(pg, 2))
    await pg.execute("DELETE FROM posts WHERE id = 1")
    await by_author.reaches({5: [post(2, 5, "b")]})
    assert by_id.rows() == {1: [post(1, 5, "a")], 2: [post(2, 5, "b")]}


async def test_identifiers_are_quoted(pg: Any, pg_service: PostgresExternalService) -> None:
    await pg.execute('CREATE TABLE "we""ird $skiff$ table" ("my ""id""" INT, "v" TEXT)')
    await pg.execute('INSERT INTO "we""ird $skiff$ table" VALUES (1, \'x\')')
    seen = Recorder()
    params = {"key": {"col": 'my "id"', "type": "INT"}}
    await pg_service.subscribe("svc/weird", 'we"ird $skiff$ table', params, seen)
    assert seen.rows() == {1: [{'my "id"': 1, "v": "x"}]}
    await pg.execute('UPDATE "we""ird $skiff$ table" SET v = \'y\'')
    await seen.reaches({1: [{'my "id"': 1, "v": "y"}]})


async def test_truncate_empties_the_collection(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'a')")
    seen = Recorder()
    await pg_service.subscribe("svc/posts", "posts", BY_ID, seen)
    await pg.execute("TRUNCATE posts")
    await seen.reaches({})
    assert seen.updates[-1] == ([], True)


async def test_a_burst_of_a_thousand_inserts_arrives_completely(pg: Any, postgres_dsn: str) -> None:
    await make_posts(pg)
    seen = Recorder()
    config = PostgresConfig(postgres_dsn, batch_keys=300)
    async with PostgresExternalService(config) as service:
        await service.subscribe("svc/posts", "posts", BY_ID, seen)
        # 500 transactions of one row, then one transaction of 500.
        for i in range(500):
            await pg.execute("INSERT INTO posts (author, title) VALUES ($1, 'x')", i)
        async with pg.transaction():
            await pg.executemany(
                "INSERT INTO posts (author, title) VALUES ($1, 'y')", [(i,) for i in range(500)]
            )
        expected = {i + 1: [post(i + 1, i, "x")] for i in range(500)}
        expected |= {i + 501: [post(i + 501, i, "y")] for i in range(500)}
        await seen.reaches(expected, within=10)
        # Keys are read back together: far fewer reads than notifications.
        assert len(seen.updates) < 500
        assert seen.errors == []


async def test_a_key_outside_its_types_bounds_is_reported_not_delivered(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await pg.execute("CREATE TABLE counters (id INT PRIMARY KEY, n INT)")
    await pg.execute("INSERT INTO counters VALUES (1, 0), (-5, 0)")
    seen = Recorder()
    await pg_service.subscribe(
        "svc/counters", "counters", {"key": {"col": "id", "type": "SMALLSERIAL"}}, seen
    )
    assert seen.rows() == {1: [{"id": 1, "n": 0}]}  # -5 is no SMALLSERIAL
    assert [type(e).__name__ for e in seen.errors] == ["InvalidPostgresKeyError"]
    await pg.execute("INSERT INTO counters VALUES (40000, 0), (2, 0)")
    await seen.reaches({1: [{"id": 1, "n": 0}], 2: [{"id": 2, "n": 0}]})
    await eventually(lambda: len(seen.errors) == 2)
    assert "out of range: 40000" in str(seen.errors[1])
