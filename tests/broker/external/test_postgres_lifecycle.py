"""PostgresExternalService's lifecycle against a real PostgreSQL (tests/support/postgres.py):
subscriptions refused without leftovers (params, locks, privileges), unsubscribe and shutdown
removing what was installed, a restarted server and a terminated session reconnected with
nothing missed, what a dead adapter left dropped by the next."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.external import (
    InvalidPostgresParamsError,
    PostgresConfig,
    PostgresExternalService,
    PostgresSubscribeError,
    PostgresUnavailableError,
)
from tests.support.polling import eventually
from tests.support.postgres import PostgresServer
from tests.support.postgres_tables import (
    BY_ID,
    Recorder,
    adapter_sessions_are,
    installed,
    make_posts,
    nothing_installed,
    post,
    waiting_for_a_lock,
)

pytestmark = pytest.mark.timeout(30)

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is not installed")

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("resource", "params", "message"),
    [
        ("posts", {}, "no key specified"),
        ("posts", {"key": {"col": "id", "type": "UUID"}}, "unsupported PostgreSQL key type"),
        ("nosuch", BY_ID, "no table 'nosuch'"),
        ("posts", {"key": {"col": "nosuch", "type": "TEXT"}}, "has no column 'nosuch'"),
        ("posts", {"key": {"col": "title", "type": "INT"}}, "not an integer type"),
        ("posts_view", BY_ID, "no table 'posts_view'"),
    ],
)
async def test_invalid_params_raise_and_leave_nothing_behind(
    pg: Any, pg_service: PostgresExternalService, resource: str, params: Any, message: str
) -> None:
    await make_posts(pg)
    await pg.execute("CREATE VIEW posts_view AS SELECT * FROM posts")
    seen = Recorder()
    with pytest.raises(InvalidPostgresParamsError, match=message):
        await pg_service.subscribe("svc/bad", resource, params, seen)
    assert await installed(pg) == ([], [])
    assert seen.updates == []
    # The instance is free again, and the pg_service works.
    await pg_service.subscribe("svc/bad", "posts", BY_ID, seen)
    assert seen.updates == [([], True)]


async def test_unsubscribe_removes_the_trigger_and_the_function(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    seen = Recorder()
    await pg_service.subscribe("svc/posts", "posts", BY_ID, seen)
    functions, triggers = await installed(pg)
    assert len(functions) == 1
    assert triggers == sorted([functions[0], functions[0] + "_t"])

    pg_service.unsubscribe("svc/posts")
    pg_service.unsubscribe("svc/posts")  # idempotent
    pg_service.unsubscribe("never/subscribed")
    await eventually(lambda: nothing_installed(pg))
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'unseen')")
    await asyncio.sleep(0.2)
    assert seen.updates == [([], True)]


async def test_the_same_instance_twice_is_refused(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    await pg_service.subscribe("svc/posts", "posts", BY_ID, Recorder())
    with pytest.raises(PostgresSubscribeError, match="already subscribed"):
        await pg_service.subscribe("svc/posts", "posts", BY_ID, Recorder())


async def test_a_restarted_server_is_reconnected_and_nothing_is_missed(
    private_postgres: PostgresServer,
) -> None:
    dsn = private_postgres.dsn()
    pg = await asyncpg.connect(dsn)
    await make_posts(pg)
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'a'), (2, 'b')")
    await pg.close()
    seen = Recorder()
    # A first retry a second after the loss: the changes below are made while disconnected.
    config = PostgresConfig(dsn, backoff_first_s=1.0, backoff_cap_s=1.0)
    async with PostgresExternalService(config) as service:
        await service.subscribe("svc/posts", "posts", BY_ID, seen)
        await private_postgres.restart()
        await eventually(lambda: seen.errors)
        assert isinstance(seen.errors[0], PostgresUnavailableError)
        assert not service.connected

        pg = await asyncpg.connect(dsn)
        try:
            await pg.execute("UPDATE posts SET title = 'a2' WHERE id = 1")
            await pg.execute("DELETE FROM posts WHERE id = 2")
            await pg.execute("INSERT INTO posts (author, title) VALUES (3, 'c')")
            assert not service.connected  # all of it happened while nobody listened
            await seen.reaches({1: [post(1, 1, "a2")], 3: [post(3, 3, "c")]}, within=10)
            assert seen.updates[-1][1] is True  # re-delivered whole
            assert seen.loadings == 1
            # Live again, with one trigger, not two.
            await pg.execute("INSERT INTO posts (author, title) VALUES (4, 'd')")
            await seen.reaches({1: [post(1, 1, "a2")], 3: [post(3, 3, "c")], 4: [post(4, 4, "d")]})
            assert len((await installed(pg))[1]) == 2
        finally:
            await pg.close()
    pg = await asyncpg.connect(dsn)
    try:
        assert await installed(pg) == ([], [])
    finally:
        await pg.close()


async def test_shutdown_drops_everything_and_disconnects(pg: Any, postgres_dsn: str) -> None:
    await make_posts(pg)
    service = PostgresExternalService(postgres_dsn)
    await service.subscribe("svc/a", "posts", BY_ID, Recorder())
    await service.subscribe("svc/b", "posts", {"key": {"col": "author", "type": "INT"}}, Recorder())
    assert len((await installed(pg))[0]) == 2
    await service.shutdown()
    assert await installed(pg) == ([], [])
    sessions = await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'skiff-postgres'"
    )
    assert sessions == 0
    with pytest.raises(PostgresSubscribeError, match="shut down"):
        await service.subscribe("svc/c", "posts", BY_ID, Recorder())


async def test_an_unreachable_database_is_a_clear_error(postgres_server: PostgresServer) -> None:
    from skiff.dev.embedded_redis import free_port

    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    async with PostgresExternalService(PostgresConfig(dsn, connect_timeout_s=2)) as service:
        with pytest.raises(PostgresUnavailableError, match="cannot connect"):
            await service.subscribe("svc/posts", "posts", BY_ID, Recorder())


async def test_a_table_locked_too_long_fails_the_subscription_cleanly(
    pg: Any, postgres_dsn: str
) -> None:
    await make_posts(pg)
    config = PostgresConfig(postgres_dsn, lock_timeout_s=0.3)
    async with PostgresExternalService(config) as service:
        async with pg.transaction():  # a writer's open transaction holds the table
            await pg.execute("LOCK TABLE posts IN ROW EXCLUSIVE MODE")
            with pytest.raises(PostgresSubscribeError, match="lock timeout"):
                await service.subscribe("svc/posts", "posts", BY_ID, Recorder())
        assert await installed(pg) == ([], [])
        seen = Recorder()
        await service.subscribe("svc/posts", "posts", BY_ID, seen)
        assert seen.updates == [([], True)]


async def test_missing_privileges_fail_the_subscription_cleanly(pg: Any, postgres_dsn: str) -> None:
    await make_posts(pg)
    role = f"reader_{secrets.token_hex(4)}"
    await pg.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await pg.execute(f"GRANT SELECT ON posts TO {role}")
        await pg.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        dsn = postgres_dsn.replace("postgres@", f"{role}@", 1)
        async with PostgresExternalService(dsn) as service:
            # It may create the function, not a trigger on a table it does not own.
            with pytest.raises(PostgresSubscribeError, match=r"must be owner|permission denied"):
                await service.subscribe("svc/posts", "posts", BY_ID, Recorder())
        assert await installed(pg) == ([], [])
    finally:
        await pg.execute(f"DROP OWNED BY {role}")
        await pg.execute(f"DROP ROLE {role}")


async def test_unsubscribing_while_subscribing_leaves_nothing(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    seen = Recorder()
    async with pg.transaction():  # the trigger's creation waits for this transaction
        await pg.execute("LOCK TABLE posts IN ROW EXCLUSIVE MODE")
        subscribing = asyncio.create_task(pg_service.subscribe("svc/posts", "posts", BY_ID, seen))
        await eventually(lambda: waiting_for_a_lock(pg))
        pg_service.unsubscribe("svc/posts")
    await subscribing
    await eventually(lambda: nothing_installed(pg))
    assert seen.updates == []
    await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'unseen')")
    await asyncio.sleep(0.2)
    assert seen.updates == []


CRASHING_ADAPTER = """
import asyncio, os, sys
from broker.external import PostgresExternalService

class Callbacks:
    def update(self, entries, is_init): pass
    def error(self, reason): pass
    def loading(self): pass

async def main():
    service = PostgresExternalService(sys.argv[1])
    await service.subscribe("svc/crashed", "posts", {"key": {"col": "id", "type": "SERIAL"}},
                            Callbacks())
    os._exit(1)  # dies without shutdown(): its trigger and function stay behind

asyncio.run(main())
"""


async def test_what_a_dead_adapter_left_is_dropped_by_the_next(pg: Any, postgres_dsn: str) -> None:
    await make_posts(pg)
    async with PostgresExternalService(postgres_dsn) as alive:
        await alive.subscribe("svc/alive", "posts", BY_ID, Recorder())
        crashed = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CRASHING_ADAPTER, postgres_dsn, cwd=ROOT
        )
        assert await crashed.wait() == 1
        assert len((await installed(pg))[0]) == 2
        await eventually(lambda: adapter_sessions_are(pg, 1))  # the dead one's session has ended

        async with PostgresExternalService(postgres_dsn) as later:
            await later.subscribe("svc/later", "posts", BY_ID, Recorder())
            functions, _ = await installed(pg)
            # The dead adapter's objects are gone; the live one's stay.
            assert len(functions) == 2
            assert any(f.startswith("skiff_svc_alive_") for f in functions)
            assert not any(f.startswith("skiff_svc_crashed_") for f in functions)


async def test_a_role_with_the_trigger_privilege_only_subscribes_and_reconnects(
    pg: Any, postgres_dsn: str
) -> None:
    """Not the table's owner: SELECT and TRIGGER on it, CREATE in its schema (docs/external.md).
    A terminated session is reconnected, and the triggers installed again in place."""
    await make_posts(pg)
    role = f"feeder_{secrets.token_hex(4)}"
    await pg.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await pg.execute(f"GRANT SELECT, TRIGGER ON posts TO {role}")
        await pg.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        dsn = postgres_dsn.replace("postgres@", f"{role}@", 1)
        seen = Recorder()
        config = PostgresConfig(dsn, backoff_first_s=0.05)
        async with PostgresExternalService(config) as service:
            await service.subscribe("svc/posts", "posts", BY_ID, seen)
            await pg.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await eventually(lambda: seen.errors)
            await eventually(lambda: seen.loadings == 1 and service.connected)
            await pg.execute("INSERT INTO posts (author, title) VALUES (1, 'a')")
            await seen.reaches({1: [post(1, 1, "a")]})
            assert len((await installed(pg))[1]) == 2
        assert await installed(pg) == ([], [])
    finally:
        await pg.execute(f"DROP OWNED BY {role}")
        await pg.execute(f"DROP ROLE {role}")


class Refusing(Recorder):
    def update(self, entries: Any, is_init: bool) -> None:
        raise ValueError("the consumer refuses")


async def test_a_first_update_refused_by_the_callbacks_fails_the_subscription(
    pg: Any, pg_service: PostgresExternalService
) -> None:
    await make_posts(pg)
    with pytest.raises(ValueError, match="the consumer refuses"):
        await pg_service.subscribe("svc/posts", "posts", BY_ID, Refusing())
    assert await installed(pg) == ([], [])
