"""The PostgreSQL adapter's connection: its configuration, one operation at a time on it, a
check of it while idle, and reconnection with backoff when it is lost.

One connection carries a service's LISTENs and every query, one at a time (asyncpg runs one
operation per connection; the lock makes the others wait their turn). A loss is noticed by
asyncpg (the socket closed), by a query failing or timing out, or by the periodic check of an
idle connection (a peer that vanished without closing never wakes a LISTEN). It is reported
once (`on_lost`), then connections are attempted with capped exponential backoff; each new one
is handed to `on_connected`, under the lock, before anything else may use it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broker.errors import ConfigError
from broker.external.postgres_params import PostgresUnavailableError
from broker.external.postgres_rows import SERVER_SETTINGS, configure_codecs
from broker.runtime.backoff import Backoff
from broker.runtime.tasks import Supervisor

logger = logging.getLogger("skiff.broker.external.postgres")

Operation = Callable[[Any], Awaitable[Any]]
Notified = Callable[[Any, int, str, str], None]


@dataclass(frozen=True)
class PostgresConfig:
    """Where the database is and how patiently to talk to it.

    `dsn`: a libpq URI or key=value string (`postgresql://user:pw@host:5432/db`). A query gives
    up after `query_timeout_s` (the connection is then treated as lost); an idle connection is
    checked every `check_interval_s`. Installing or dropping a trigger waits at most
    `lock_timeout_s` for the table's lock (writers' open transactions hold it back). Reconnection
    waits `backoff_first_s`, doubling up to `backoff_cap_s`. A burst of notified keys is read
    `batch_keys` at a time."""

    dsn: str
    connect_timeout_s: float = 10.0
    query_timeout_s: float = 60.0
    check_interval_s: float = 10.0
    lock_timeout_s: float = 10.0
    backoff_first_s: float = 0.1
    backoff_cap_s: float = 5.0
    batch_keys: int = 1000

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "query_timeout_s", "check_interval_s", "lock_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"PostgresConfig.{name} must be positive")
        if not 0 < self.backoff_first_s <= self.backoff_cap_s:
            raise ConfigError("PostgresConfig: need 0 < backoff_first_s <= backoff_cap_s")
        if self.batch_keys < 1:
            raise ConfigError("PostgresConfig.batch_keys must be at least 1")


def driver() -> Any:
    """asyncpg (the `postgres` extra), imported on first use."""
    try:
        return importlib.import_module("asyncpg")
    except ImportError as err:
        raise PostgresUnavailableError(
            "the PostgreSQL adapter needs asyncpg: pip install 'skiff[postgres]'"
        ) from err


class PostgresLink:
    """The one connection of a PostgresExternalService, kept up."""

    def __init__(
        self,
        config: PostgresConfig,
        tasks: Supervisor,
        *,
        on_connected: Operation,
        on_lost: Callable[[PostgresUnavailableError], None],
    ) -> None:
        self.config = config
        self.pg = driver()
        errors = self.pg.exceptions
        #: What a lost (or unusable) connection raises. A query timing out counts (the
        #: connection may be dead); a query cancelled by the server (statement_timeout), which
        #: is class 57 like a shutdown, does not.
        self.lost_errors: tuple[type[BaseException], ...] = (
            OSError,
            TimeoutError,
            errors.InterfaceError,
            errors.PostgresConnectionError,
            errors.AdminShutdownError,
            errors.CrashShutdownError,
            errors.CannotConnectNowError,
            errors.DatabaseDroppedError,
            errors.IdleSessionTimeoutError,
        )
        self.lock = asyncio.Lock()
        self.conn: Any = None
        self.closing = False
        self._tasks = tasks
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._reconnecting: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None

    def current(self) -> Any:
        """The connection (call under `lock`)."""
        if self.conn is None:
            raise PostgresUnavailableError("the connection to PostgreSQL was lost")
        return self.conn

    async def ensure(self) -> None:
        """Connect, unless connected (`on_connected` runs on the new connection first)."""
        if self.conn is not None:
            return
        async with self.lock:
            if self.conn is not None:
                return
            conn = await self.connect()
            try:
                await self._on_connected(conn)
            except BaseException as err:
                self.lost(conn, err, report=False)
                raise
        if self._checking is None and not self.closing:
            self._checking = self._tasks.spawn(self._check(), name="postgres check")

    async def connect(self) -> Any:
        try:
            conn = await self.pg.connect(
                self.config.dsn,
                timeout=self.config.connect_timeout_s,
                command_timeout=self.config.query_timeout_s,
                server_settings=SERVER_SETTINGS,
            )
            try:
                await configure_codecs(conn)
            except BaseException:
                conn.terminate()
                raise
        except (*self.lost_errors, self.pg.PostgresError) as err:
            raise PostgresUnavailableError(f"cannot connect to PostgreSQL: {err}") from err
        conn.add_termination_listener(self._terminated)
        self.conn = conn
        return conn

    async def run(
        self, operation: Operation, on_failure: Callable[[Exception], None] | None = None
    ) -> Any:
        """`operation(connection)`, alone on the connection. None when there is no connection,
        it was lost (and that handled), or the query failed (given to `on_failure`)."""
        async with self.lock:
            conn = self.conn
            if conn is None:
                return None
            try:
                return await operation(conn)
            except self.lost_errors as err:
                self.lost(conn, err)
            except self.pg.PostgresError as err:
                if on_failure is None:
                    logger.warning("postgres: %s: %s", err.__class__.__name__, err)
                else:
                    on_failure(err)
        return None

    def lost(self, conn: Any, reason: object, *, report: bool = True) -> None:
        """`conn` is gone (or unusable): drop it, tell the owner (`report`), reconnect."""
        if conn is not self.conn:
            return  # an older one, already handled
        self.conn = None
        conn.terminate()
        if self.closing:
            return
        error = PostgresUnavailableError(f"connection to PostgreSQL lost ({reason}); reconnecting")
        logger.warning("postgres: %s", error)
        if report:
            self._on_lost(error)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self._tasks.spawn(self._reconnect(), name="postgres reconnect")

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close(timeout=self.config.connect_timeout_s)
            except (*self.lost_errors, self.pg.PostgresError):
                conn.terminate()

    def _terminated(self, conn: Any) -> None:
        self.lost(conn, "connection closed")

    async def _reconnect(self) -> None:
        backoff = Backoff(self.config.backoff_first_s, self.config.backoff_cap_s)
        while self.conn is None and not self.closing:
            await asyncio.sleep(backoff.next())
            try:
                await self.ensure()
            except (PostgresUnavailableError, self.pg.PostgresError, *self.lost_errors) as err:
                logger.info("postgres: reconnection failed: %s", err)

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval_s)
            await self.run(lambda conn: conn.fetchval("SELECT 1"))
