"""One PostgreSQL subscription's state: its installed names, the keys notified and not yet read
again, and turning rows into updates of its callbacks.

Notifications only name keys. They are collected in sets and read back together, so a burst
(a thousand inserts in one transaction, or a thousand transactions) becomes a few queries
`WHERE key = ANY($1)` of up to `batch` keys each, and a key notified many times is read once.
A key notified while its rows are being read is read again afterwards: the last read of a key
always starts after its last notification, so the collection ends up equal to the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.external.postgres_params import PostgresParams
from broker.external.postgres_rows import entries, rows_by_key
from broker.external.postgres_sql import (
    MAX_KEY_PAYLOAD_BYTES,
    ObjectNames,
    key_digest,
    parse_payload,
    select_all_sql,
    select_digests_sql,
    select_keys_sql,
)
from broker.types import Json
from graph.external import ExternalCallbacks

logger = logging.getLogger("skiff.broker.external.postgres")

Query = tuple[str, tuple[Any, ...]]


@dataclass(slots=True)
class Batch:
    """What one read covers: everything (`full`), or some keys and long-key digests."""

    full: bool = False
    keys: list[Json] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


class PostgresSubscription:
    """A table followed for one subscription (`instance`) of a PostgresExternalService."""

    def __init__(
        self, instance: str, params: PostgresParams, callbacks: ExternalCallbacks, base: str
    ) -> None:
        self.instance = instance
        self.params = params
        self.callbacks = callbacks
        self.base = base
        self.names: ObjectNames | None = None
        self.column_type = "text"
        self.installed = False  # objects may exist in the database (until dropped)
        self.live = False  # its first content was delivered: it has callbacks to tell
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self._keys: set[Json] = set()
        self._digests: set[str] = set()
        self._full = False
        # Long keys delivered, by digest: a deletion notified by digest finds its key here.
        self._long_keys: dict[str, Json] = {}
        # Without historic data, the keys delivered so far: what a full read reads again.
        self._known: set[Json] | None = None if params.sync_historic else set()

    def located(self, names: ObjectNames, column_type: str) -> None:
        self.names = names
        self.column_type = column_type

    # Notifications, on the event loop from the connection.

    def notified(self, payload: str) -> None:
        parsed = parse_payload(payload)
        if parsed is None:
            logger.warning("%s: unexpected notification payload %.80r", self.instance, payload)
            return
        kind, text = parsed
        if kind == "all":
            self._full = True
        elif kind == "digest":
            self._digests.add(text)
        else:
            try:
                self._keys.add(self.params.key.parse(text))
            except ValueError as err:
                self.callbacks.error(err)
                return
        self.wake.set()

    def has_work(self) -> bool:
        return self._full or bool(self._keys) or bool(self._digests)

    def take(self, limit: int) -> Batch:
        """The next read: a full one when asked (it covers every key pending), else up to
        `limit` keys and digests."""
        if self._full:
            self.discard_pending()
            return Batch(full=True)
        keys = [self._keys.pop() for _ in range(min(limit, len(self._keys)))]
        digests = [self._digests.pop() for _ in range(min(limit, len(self._digests)))]
        return Batch(keys=keys, digests=digests)

    def discard_pending(self) -> None:
        """Forget the keys notified so far (a full read is about to cover them)."""
        self._full = False
        self._keys.clear()
        self._digests.clear()
        self.wake.clear()

    # Reads.

    def queries(self, batch: Batch) -> list[Query]:
        names = self._names()
        col = self.params.key.col
        if batch.full and self._known is None:
            return [(select_all_sql(names, col), ())]
        keys = list(self._known or ()) if batch.full else batch.keys
        out: list[Query] = []
        if keys:
            integer = not self.params.key.is_text
            out.append((select_keys_sql(names, col, self.column_type, integer), (keys,)))
        if batch.digests:
            out.append((select_digests_sql(names, col), (batch.digests,)))
        return out

    # Deliveries.

    def deliver_all(self, records: Sequence[Any]) -> None:
        """The whole content (`update(..., True)`): the table, or without historic data the
        current rows of the keys delivered so far."""
        grouped = self._group(records)
        self._long_keys.clear()
        if self._known is not None:
            self._known.clear()
        self._remember(grouped)
        self.callbacks.update(entries(grouped), True)

    def deliver_changes(self, batch: Batch, records: Sequence[Any]) -> None:
        grouped = self._group(records)
        gone: list[Json] = list(batch.keys)
        for digest in batch.digests:
            key = self._long_keys.pop(digest, None)
            if key is not None:
                gone.append(key)
        for key in gone:
            if key not in grouped and self._known is not None:
                self._known.discard(key)
        self._remember(grouped)
        changed = entries(grouped, gone)
        if changed:
            self.callbacks.update(changed, False)

    def _group(self, records: Sequence[Any]) -> dict[Json, list[Json]]:
        grouped, errors = rows_by_key(records, self.params.key.parse)
        for err in errors[:1]:  # one report per read is enough to see the table is off
            self.callbacks.error(err)
        return grouped

    def _remember(self, grouped: dict[Json, list[Json]]) -> None:
        if self._known is not None:
            self._known.update(grouped)
        if self.params.key.is_text:
            for key in grouped:
                if len(key) * 4 > MAX_KEY_PAYLOAD_BYTES and (
                    len(key.encode()) > MAX_KEY_PAYLOAD_BYTES
                ):
                    self._long_keys[key_digest(key)] = key

    def _names(self) -> ObjectNames:
        if self.names is None:
            raise RuntimeError(f"{self.instance}: not located yet")
        return self.names

    def close(self) -> None:
        """Stop: nothing is delivered afterwards (its reading task is cancelled)."""
        self.closed = True
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
