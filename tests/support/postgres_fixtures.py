"""PostgreSQL fixtures (tests/support/postgres.py starts the server), registered for every test
by tests/conftest.py (the adapter's tests, the hackernews example's).

- `postgres_server` (session): a private server, started once; the tests are skipped, with the
  reason, when PostgreSQL or asyncpg is not installed (`.ci/run` installs Debian's package).
- `postgres_dsn` (function): a fresh database on it, dropped afterwards.
- `private_postgres` (function): a server of the test's own, for tests that restart it.
- `pg` (function): an asyncpg connection to the test's database; `pg_service`: a
  PostgresExternalService on it, shut down afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from broker.external import PostgresExternalService
from tests.support.postgres import PostgresServer, PostgresUnavailable


def _new_server() -> PostgresServer:
    pytest.importorskip("asyncpg", reason="asyncpg is not installed: pip install -e '.[test]'")
    try:
        return PostgresServer()
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgres_server() -> AsyncIterator[PostgresServer]:
    server = _new_server()
    try:
        await server.start()
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def postgres_dsn(postgres_server: PostgresServer) -> AsyncIterator[str]:
    import asyncpg

    name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.dsn(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PostgresServer]:
    server = _new_server()
    try:
        await server.start()
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[Any]:
    """An asyncpg connection to the test's database (the test's own writes and checks)."""
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def pg_service(postgres_dsn: str) -> AsyncIterator[PostgresExternalService]:
    """An adapter on the test's database, shut down afterwards."""
    async with PostgresExternalService(postgres_dsn) as service:
        yield service
