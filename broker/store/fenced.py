"""FencedWriter: the only way a leader writes the replication keys (meta, streams, snapshots).

Each method runs one script of broker/store/scripts.py, so each write is atomic and is made only
while the writer's exact lease record is the live one. A rejection raises a precise error and writes
nothing; what the leader does next is its business:

- `LeaseLostError`: another holder has the lease (`current`), or none does (`current` is None:
  it expired, or Redis lost its data). Stop writing with this lease; when nobody holds it, the
  node may compete again and, holding a new lease, find out which case it was.
- `KeyspaceLostError`: the meta hash is gone (FLUSHALL, restart without persistence). The
  lease holder republishes its in-memory state with `init_epoch` under a new epoch.
- `EpochChangedError`: someone initialised another epoch. Step down and rebuild.
- `VersionConflictError`: the version is not the next one (or not in range for a snapshot).
- `StaleSnapshotError` / `SnapshotMissingError`: the snapshot pointer moved, or the staged
  snapshot expired before publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from broker.errors import BrokerError
from broker.store import scripts
from broker.store.codec import DeltaEntry, InputLogEntry, LeaseRecord, Meta
from broker.store.durability import Durability, run_durably
from broker.store.keyspace import Keyspace
from broker.store.scripts import Arg, RedisCallError

#: How long an idempotency record outlives its write by default: a client retrying a day later
#: is not retrying any more.
IDEMPOTENCY_TTL_MS: Final = 24 * 3600 * 1000
#: How long a replaced snapshot stays readable, so a follower loading it can finish.
SNAPSHOT_GRACE_MS: Final = 60_000


class LeaseLostError(BrokerError):
    """The caller no longer holds the lease; `current` is who does (None: nobody, or unknown).

    Raised by the fenced scripts when they refuse a write, and by a candidate whose renewals
    failed while it was taking office: the one name for "this process lost the lease"."""

    def __init__(self, current: LeaseRecord | None, message: str | None = None) -> None:
        super().__init__(
            message or f"lease lost; now held by {current.encode().decode() if current else None}"
        )
        self.current = current


class KeyspaceLostError(BrokerError):
    """The meta hash is missing: Redis lost the service's data."""


class EpochChangedError(BrokerError):
    """The keyspace belongs to another epoch than the caller's."""

    def __init__(self, current: str | None) -> None:
        super().__init__(f"keyspace epoch is now {current!r}")
        self.current = current


class VersionConflictError(BrokerError):
    """The version does not follow the head (append) or is out of range (snapshot)."""

    def __init__(self, version: int, head: int | None) -> None:
        super().__init__(f"version {version} does not fit head {head}")
        self.version = version
        self.head = head


class StaleSnapshotError(BrokerError):
    """The current snapshot is not the one the caller expected to replace."""

    def __init__(self, current: int | None) -> None:
        super().__init__(f"current snapshot is {current}")
        self.current = current


class SnapshotMissingError(BrokerError):
    """A snapshot hash (or its manifest, or a chunk) is absent: never staged, or expired."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """`duplicate`: the idempotency key had been applied, at `version`; nothing was written."""

    version: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class TrimResult:
    deltas: int
    inputs: int


class FencedWriter:
    """The writes of the leader holding `lease` over `keyspace`."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        lease: LeaseRecord,
        durability: Durability | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keyspace
        self.lease = lease
        self.durability = durability or Durability()

    async def append(
        self,
        delta: DeltaEntry,
        writes: InputLogEntry | None = None,
        *,
        idempotency_ttl_ms: int = IDEMPOTENCY_TTL_MS,
    ) -> AppendResult:
        """Publish version `delta.version` (and the batch that produced it) as the new head.

        With an idempotency key already recorded, nothing is written and the result says
        `duplicate`. The leader checks `read_idempotency` before applying a write to its engine;
        a duplicate here means the record appeared in between, and the tick it applied must be
        thrown away (rebuild), since it was never published.

        With a durability mode other than `none` it returns once the replicas it asks for hold
        the entry, or raises NotDurableError: the entry is on the primary, unconfirmed.
        """
        if delta.term != self.lease.token:
            raise BrokerError(f"delta term {delta.term} is not the lease token {self.lease.token}")
        if writes is not None and (writes.version, writes.term) != (delta.version, delta.term):
            raise BrokerError("the input log entry must carry the delta's version and term")
        keys = [self._keys.meta, self._keys.lease, self._keys.deltas, self._keys.inputs]
        if writes is not None and writes.idempotency_key is not None:
            keys.append(self._keys.idempotency(writes.idempotency_key))
        delta_fields = _flat(delta.encode())
        input_fields = _flat(writes.encode()) if writes is not None else []
        args: list[Arg] = [
            self.lease.encode(),
            delta.epoch,
            delta.version,
            delta.ts_ms,
            idempotency_ttl_ms,
            len(delta_fields),
            *delta_fields,
            len(input_fields),
            *input_fields,
        ]
        reply = await run_durably(self._redis, self.durability, scripts.APPEND, keys, args)
        status, detail = scripts.status_of(reply)
        if status == "ok":
            return AppendResult(delta.version)
        if status == "dup":
            return AppendResult(int(detail[0]), duplicate=True)
        raise _rejection(status, detail, delta.version)

    async def confirm(self) -> None:
        """Return once the replicas durability asks for hold everything this primary applied
        (what an append whose reply was lost, or a retried Idempotency-Key, found there).
        Raises NotDurableError, LeaseLostError (not the holder: nothing written) or
        RedisCallError."""
        if self.durability.command is None:
            return
        keys, args = [self._keys.lease], [self.lease.encode()]
        if not await run_durably(self._redis, self.durability, scripts.MARK, keys, args):
            raise LeaseLostError(None, "the lease moved before the write could be confirmed")

    async def init_epoch(
        self,
        meta: Meta,
        *,
        replaces: Meta | None,
        grace_ms: int = SNAPSHOT_GRACE_MS,
    ) -> None:
        """Start `meta.epoch` at `meta.head` from the snapshot staged at that version.

        `replaces` is the meta the caller read (None: there was none); if the keyspace moved on
        since, nothing happens and the matching error says how.
        """
        if meta.snapshot != meta.head:
            raise BrokerError("a new epoch starts at its snapshot: meta.snapshot must equal head")
        old_key = self._keys.snapshot(replaces.epoch, replaces.snapshot) if replaces else ""
        new_key = self._keys.snapshot(meta.epoch, meta.snapshot)
        keys = [self._keys.meta, self._keys.lease, self._keys.deltas, self._keys.inputs]
        args: list[Arg] = [
            self.lease.encode(),
            replaces.epoch if replaces else "",
            replaces.snapshot if replaces else "",
            grace_ms,
            *_flat(meta.encode()),
        ]
        reply = await scripts.INIT(self._redis, [*keys, new_key, old_key or new_key], args)
        status, detail = scripts.status_of(reply)
        if status != "ok":
            raise _rejection(status, detail, meta.head)

    async def publish_snapshot(
        self,
        epoch: str,
        version: int,
        *,
        replaces: int,
        trim_before: int,
        now_ms: int,
        grace_ms: int = SNAPSHOT_GRACE_MS,
    ) -> TrimResult:
        """Make the staged snapshot at `version` current (it replaces snapshot `replaces`) and
        drop stream entries older than `trim_before` (at most `version + 1`)."""
        keys = [
            self._keys.meta,
            self._keys.lease,
            self._keys.deltas,
            self._keys.inputs,
            self._keys.snapshot(epoch, version),
            self._keys.snapshot(epoch, replaces),
        ]
        args: list[Arg] = [
            self.lease.encode(),
            epoch,
            version,
            replaces,
            trim_before,
            grace_ms,
            now_ms,
        ]
        status, detail = scripts.status_of(await scripts.SNAPSHOT(self._redis, keys, args))
        if status != "ok":
            raise _rejection(status, detail, version)
        return TrimResult(int(detail[0]), int(detail[1]))


def _flat(fields: dict[bytes, bytes]) -> list[Arg]:
    return [item for pair in fields.items() for item in pair]


def _rejection(status: str, detail: list[str], version: int) -> BrokerError:
    first = detail[0] if detail else ""
    if status == "fenced":
        return LeaseLostError(LeaseRecord.decode(first) if first else None)
    if status == "nometa":
        return KeyspaceLostError("the meta hash is missing: Redis lost this service's data")
    if status == "epoch":
        return EpochChangedError(first or None)
    if status in ("gap", "range"):
        return VersionConflictError(version, int(first) if first else None)
    if status == "stale":
        return StaleSnapshotError(int(first) if first else None)
    if status == "nosnap":
        return SnapshotMissingError(f"no staged snapshot at version {version}")
    return RedisCallError(f"unknown script status {status!r}", transient=False)
