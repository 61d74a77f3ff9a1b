"""PostgresExternalService: PostgreSQL tables as external collections (Skip's
@skip-adapter/postgres, in Python over asyncpg).

A subscription follows one table (`resource`), keyed by one column (`params["key"]`): its first
content is the table's rows grouped by key (`update(entries, True)`), then each change names
the keys it touched with their complete new rows (`[]`: no row left).

How changes are seen: LISTEN/NOTIFY from triggers the adapter installs, as Skip does (a row
trigger per subscription calling `pg_notify(channel, key::text)`; the adapter reads the
notified keys' rows again, postgres_sql.py has the details). Logical decoding would carry the
rows themselves and survive a disconnection without a re-read, but it needs
`wal_level=logical` (a server restart to turn on), the REPLICATION privilege, and a replication
slot per subscriber, which holds back WAL without bound while its consumer is away: server-wide
configuration and a disk-filling hazard for a per-table feed. Triggers need only TRIGGER on the
table and CREATE in its schema, work on any PostgreSQL since 11, and leave nothing once
dropped. What NOTIFY does not give, delivery while disconnected, is restored by reading every
table again on reconnection (postgres_connection.py): `update(entries, True)`.

asyncpg is the `postgres` extra (`pip install 'skiff[postgres]'`), imported on first use.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from functools import partial
from typing import Any

from broker.external.postgres_connection import PostgresConfig, PostgresLink
from broker.external.postgres_owners import claim, drop_orphans, owner_key
from broker.external.postgres_params import (
    InvalidPostgresParamsError,
    PostgresParams,
    PostgresSubscribeError,
    PostgresUnavailableError,
)
from broker.external.postgres_sql import (
    DESCRIBE_SQL,
    INTEGER_TYPE_OIDS,
    TABLE_KINDS,
    ObjectNames,
    drop_sql,
    install_sql,
    object_base_name,
)
from broker.external.postgres_subscription import Batch, PostgresSubscription, Query
from broker.runtime.tasks import Supervisor
from broker.types import Json
from graph.external import ExternalCallbacks, ExternalService

logger = logging.getLogger("skiff.broker.external.postgres")


class PostgresExternalService(ExternalService):
    """An ExternalService over one PostgreSQL database (`PostgresConfig`, or just a DSN).

    Connects on the first subscription; `shutdown()` (or leaving `async with`) drops every
    installed trigger and function and closes the connection."""

    def __init__(self, config: PostgresConfig | str) -> None:
        self.config = config if isinstance(config, PostgresConfig) else PostgresConfig(config)
        self._tasks = Supervisor("postgres adapter")
        self._link = PostgresLink(
            self.config, self._tasks, on_connected=self._connected, on_lost=self._disconnected
        )
        self._pg = self._link.pg
        # Salts the names of installed objects: no other process (or earlier run) shares them.
        self._token = secrets.token_hex(8)
        self._owner = owner_key(self._token)
        self._serial = 0
        self._subs: dict[str, PostgresSubscription] = {}
        self._channels: dict[str, PostgresSubscription] = {}
        # Installed functions (qualified) → their channels, until dropped.
        self._installed: dict[str, str] = {}
        self._listening: set[str] = set()  # channels LISTENed to on the current connection

    @property
    def connected(self) -> bool:
        return self._link.conn is not None

    async def __aenter__(self) -> PostgresExternalService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def subscribe(
        self, instance: str, resource: str, params: Json, callbacks: ExternalCallbacks
    ) -> None:
        parsed = PostgresParams.from_json(resource, params)
        if self._link.closing:
            raise PostgresSubscribeError(f"cannot subscribe {instance}: the service is shut down")
        if instance in self._subs:
            raise PostgresSubscribeError(f"{instance} is already subscribed")
        self._serial += 1
        base = object_base_name(instance, f"{self._token}:{self._serial}")
        sub = PostgresSubscription(instance, parsed, callbacks, base)
        self._subs[instance] = sub
        try:
            records = await self._open(sub)
            if not sub.closed:
                sub.deliver_all(records)
                sub.live = True
                sub.task = self._tasks.spawn(self._read(sub), name=f"postgres {instance}")
        except BaseException:
            self._forget(sub)
            await self._drop_ended()
            raise
        if sub.closed:
            await self._drop_ended()  # unsubscribed while being installed

    async def _open(self, sub: PostgresSubscription) -> list[Any]:
        """Install `sub` and read its first content; the database's errors as ours."""
        try:
            await self._link.ensure()
            async with self._link.lock:
                if sub.closed:
                    return []  # unsubscribed meanwhile, before anything was installed
                conn = self._link.current()
                try:
                    return await self._start(conn, sub)
                except self._link.lost_errors:
                    self._link.lost(conn, "lost while subscribing", report=False)
                    raise
        except self._link.lost_errors as err:
            raise PostgresUnavailableError(f"cannot subscribe {sub.instance}: {err}") from err
        except self._pg.PostgresError as err:
            raise PostgresSubscribeError(f"cannot subscribe {sub.instance}: {err}") from err

    def unsubscribe(self, instance: str) -> None:
        sub = self._subs.get(instance)
        if sub is None:
            return
        self._forget(sub)
        if sub.installed and not self._link.closing:
            self._tasks.spawn(self._drop_ended(), name=f"postgres drop {instance}")

    async def shutdown(self) -> None:
        """Stop every subscription, drop what they installed, close the connection."""
        if self._link.closing:
            return
        self._link.closing = True
        for sub in list(self._subs.values()):
            self._forget(sub)
        await self._tasks.aclose()
        if self._installed and self._link.conn is None:
            try:
                await self._link.connect()  # one attempt: triggers left behind fire for nothing
            except PostgresUnavailableError as err:
                logger.warning("postgres: cannot drop %s: %s", list(self._installed), err)
        await self._drop_ended()
        await self._link.close()

    # The connection's events.

    async def _connected(self, conn: Any) -> None:
        """A new connection (under the lock): claim this adapter's objects, bring every
        subscription back — its objects installed again (they may have gone with a restored
        database, or been taken for an orphan's), its channel listened to, its content
        delivered whole — and drop what ended while disconnected, and what dead adapters left."""
        self._listening.clear()
        await claim(conn, self._owner)
        for sub in list(self._subs.values()):
            if sub.installed:
                await self._restore(conn, sub)
        try:
            await self._drop_locked(conn)
            await drop_orphans(
                conn, self._owner, self.config.lock_timeout_s, self._pg.PostgresError
            )
        except self._pg.PostgresError as err:
            if isinstance(err, self._link.lost_errors):
                raise
            logger.warning("postgres: dropping ended subscriptions failed: %s", err)

    def _disconnected(self, error: PostgresUnavailableError) -> None:
        for sub in list(self._subs.values()):
            if sub.task is not None:
                sub.task.cancel()
                sub.task = None
            if sub.live:
                _call(sub, sub.callbacks.error, error)

    async def _restore(self, conn: Any, sub: PostgresSubscription) -> None:
        _call(sub, lambda _: sub.callbacks.loading(), None)
        try:
            records = await self._start(conn, sub)
        except self._link.lost_errors:
            raise
        except self._pg.PostgresError as err:
            # This table only (dropped meanwhile?): the next reconnection tries it again.
            failure = PostgresSubscribeError(f"cannot restore {sub.instance}: {err}")
            _call(sub, sub.callbacks.error, failure)
            return
        if sub.closed:
            return  # unsubscribed meanwhile: dropped with the others that ended
        _call(sub, sub.deliver_all, records)
        sub.live = True
        sub.task = self._tasks.spawn(self._read(sub), name=f"postgres {sub.instance}")

    # Subscriptions.

    async def _start(self, conn: Any, sub: PostgresSubscription) -> list[Any]:
        """Locate and check the table, install the triggers, listen, then read the first content
        (in that order: a change committed after the read has been notified)."""
        names = sub.names or await self._locate(conn, sub)
        sub.installed = True  # from here on, there may be something to drop
        self._installed[names.function] = names.channel
        async with conn.transaction():
            await conn.execute(
                install_sql(
                    names,
                    sub.params.key.col,
                    self._owner,
                    self.config.lock_timeout_s,
                    or_replace=conn.get_server_version().major >= 14,
                )
            )
        self._channels[names.channel] = sub
        await conn.add_listener(names.channel, self._notified)
        self._listening.add(names.channel)
        sub.discard_pending()
        return await _fetch_all(sub.queries(Batch(full=True)), conn)

    async def _locate(self, conn: Any, sub: PostgresSubscription) -> ObjectNames:
        params = sub.params
        row = await conn.fetchrow(DESCRIBE_SQL, params.table, params.key.col)
        if row is None or row["relkind"] not in TABLE_KINDS:
            raise InvalidPostgresParamsError(f"no table {params.table!r} (in the search_path)")
        if row["attname"] is None:
            raise InvalidPostgresParamsError(
                f"table {params.table!r} has no column {params.key.col!r}"
            )
        if not params.key.is_text and row["base_type"] not in INTEGER_TYPE_OIDS:
            raise InvalidPostgresParamsError(
                f"column {params.key.col!r} of {params.table!r} is {row['column_type']}, "
                f"not an integer type: declare its key type as TEXT"
            )
        names = ObjectNames(row["nspname"], row["relname"], sub.base)
        sub.located(names, row["column_type"])
        return names

    async def _read(self, sub: PostgresSubscription) -> None:
        """Read the rows of the notified keys again and deliver them, batch after batch."""
        while not sub.closed:
            await sub.wake.wait()
            sub.wake.clear()
            while sub.has_work() and not sub.closed:
                batch = sub.take(self.config.batch_keys)
                records = await self._link.run(
                    partial(_fetch_all, sub.queries(batch)),
                    on_failure=lambda err: _call(sub, sub.callbacks.error, _failed(sub, err)),
                )
                if records is None or sub.closed:
                    continue
                if batch.full:
                    _call(sub, sub.deliver_all, records)
                else:
                    _call(sub, partial(sub.deliver_changes, batch), records)

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if conn is not self._link.conn:
            return  # a late one from a lost connection: the reconnection reads everything
        sub = self._channels.get(channel)
        if sub is not None and not sub.closed:
            sub.notified(payload)

    def _forget(self, sub: PostgresSubscription) -> None:
        sub.close()
        if self._subs.get(sub.instance) is sub:
            del self._subs[sub.instance]
        if sub.names is not None and self._channels.get(sub.names.channel) is sub:
            del self._channels[sub.names.channel]

    async def _drop_ended(self) -> None:
        async with self._link.lock:
            conn = self._link.conn
            if conn is None:
                return  # kept in _installed: the reconnection (or shutdown) drops them
            try:
                await self._drop_locked(conn)
            except (*self._link.lost_errors, self._pg.PostgresError) as err:
                logger.warning("postgres: dropping ended subscriptions failed: %s", err)

    async def _drop_locked(self, conn: Any) -> None:
        """Drop the functions (and by CASCADE the triggers) of the subscriptions that ended, and
        stop listening to their channels. They stay in `_installed` until dropped."""
        live = {sub.names.function for sub in self._subs.values() if sub.names is not None}
        ended = [function for function in self._installed if function not in live]
        if not ended:
            return
        try:
            async with conn.transaction():
                await conn.execute(drop_sql(ended, self.config.lock_timeout_s))
            for function in ended:
                channel = self._installed[function]
                if channel in self._listening:
                    await conn.remove_listener(channel, self._notified)
                    self._listening.discard(channel)
        except self._link.lost_errors as err:
            self._link.lost(conn, err)
            raise
        for function in ended:
            self._installed.pop(function, None)


async def _fetch_all(queries: list[Query], conn: Any) -> list[Any]:
    records: list[Any] = []
    for sql, args in queries:
        records.extend(await conn.fetch(sql, *args))
    return records


def _failed(sub: PostgresSubscription, err: Exception) -> PostgresSubscribeError:
    return PostgresSubscribeError(f"{sub.instance}: {err.__class__.__name__}: {err}")


def _call(sub: PostgresSubscription, callback: Callable[[Any], None], argument: Any) -> None:
    """Call into a subscription's callbacks: their own failure is logged, and does not stop the
    subscription (nor the reconnection of the others)."""
    try:
        callback(argument)
    except Exception:
        logger.exception("postgres: the callbacks of %s failed", sub.instance)
