"""A leader played by the test, through the tested primitives (lease, fenced writer, staging).

It computes ticks with a real engine over the test service, exactly as a leader would, so what
it publishes is what a follower of that service must mirror; and it can break the rules on
purpose (gaps, trims, new epochs) to exercise a follower's continuity checks.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from broker.leader.lease import LeaderLease
from broker.runtime.clock import now_ms
from broker.store.codec import DeltaEntry, InputLogEntry, LeaseRecord, Meta, new_epoch
from broker.store.fenced import FencedWriter
from broker.store.keyspace import Keyspace, stream_id_of
from broker.store.reads import read_meta
from broker.store.snapshot_codec import SnapshotManifest, snapshot_fields
from broker.store.snapshots import stage_snapshot
from broker.types import Entry
from graph import Engine, Service


class ScriptedLeader:
    def __init__(self, redis: Redis, keyspace: Keyspace, service: Service) -> None:
        self.redis = redis
        self.keys = keyspace
        self.service = service
        self.engine = Engine.for_service(service)
        self.writer: FencedWriter | None = None
        self.epoch = ""
        self.snapshot = 0

    @property
    def version(self) -> int:
        return self.engine.version

    async def lead(self, holder: str = "scripted/1-abc") -> LeaseRecord:
        record = await LeaderLease(self.redis, self.keys, holder, 60_000).acquire()
        assert isinstance(record, LeaseRecord), record
        self.writer = FencedWriter(self.redis, self.keys, record)
        return record

    async def resign(self) -> None:
        writer = self._need_writer()
        await LeaderLease(self.redis, self.keys, writer.lease.holder, 1).release(writer.lease)
        self.writer = None

    async def start_epoch(self, epoch: str | None = None) -> str:
        """Publish the engine's state as a new epoch at its current version (first start, or
        a republication after Redis lost data)."""
        if self.writer is None:
            await self.lead()
        writer = self._need_writer()
        replaces = await read_meta(self.redis, self.keys)
        self.epoch = epoch or new_epoch()
        await self._stage(self.version)
        meta = Meta(
            service=self.keys.service,
            epoch=self.epoch,
            shared=self.engine.shared_names,
            inputs=self.engine.input_names,
            head=self.version,
            snapshot=self.version,
            created_ms=now_ms(),
            head_ms=now_ms(),
            snapshot_ms=now_ms(),
        )
        await writer.init_epoch(meta, replaces=replaces)
        self.snapshot = self.version
        return self.epoch

    async def write(self, writes: dict[str, list[Any]], idempotency_key: str | None = None) -> int:
        """One tick, appended to both streams before it is committed."""
        writer = self._need_writer()
        pending = self.engine.begin(writes)
        version = pending.result.version
        try:
            await writer.append(
                DeltaEntry(version, self.epoch, writer.lease.token, now_ms(),
                           pending.result.shared.changes),
                InputLogEntry(version, writer.lease.token, now_ms(),
                              {k: tuple(v) for k, v in writes.items()}, idempotency_key),
            )  # fmt: skip
        except BaseException:
            pending.abort()
            raise
        pending.commit()
        return version

    async def take_snapshot(self, *, trim_before: int | None = None) -> int:
        """Publish a snapshot at the current version; trims the streams before `trim_before`
        (default: keep everything after the previous snapshot)."""
        writer = self._need_writer()
        version = self.version
        await self._stage(version)
        await writer.publish_snapshot(
            self.epoch, version, replaces=self.snapshot,
            trim_before=self.snapshot + 1 if trim_before is None else trim_before,
            now_ms=now_ms(),
        )  # fmt: skip
        self.snapshot = version
        return version

    async def append_raw(self, version: int, epoch: str | None = None, **changes: Any) -> None:
        """An entry outside the rules (a gap, a foreign epoch): XADD and head, unfenced."""
        entry = DeltaEntry(version, epoch or self.epoch, 1, now_ms(),
                           {k: tuple(v) for k, v in changes.items()})  # fmt: skip
        await self.redis.xadd(self.keys.deltas, entry.encode(), id=stream_id_of(version))
        await self.redis.hset(self.keys.meta, "head", version)

    def shared_state(self) -> dict[str, list[Entry]]:
        return {name: self.engine.collection_entries(name) for name in self.engine.shared_names}

    async def _stage(self, version: int) -> None:
        inputs = {n: self.engine.collection_entries(n) for n in self.engine.input_names}
        shared = self.shared_state()
        manifest = SnapshotManifest.plan(
            epoch=self.epoch, version=version, term=self._need_writer().lease.token,
            created_ms=now_ms(), chunk_size=3, inputs=inputs, shared=shared,
        )  # fmt: skip
        await stage_snapshot(
            self.redis, self.keys, manifest, snapshot_fields(manifest, inputs, shared)
        )

    def _need_writer(self) -> FencedWriter:
        if self.writer is None:
            raise RuntimeError("call lead() first")
        return self.writer


def mirror_state(engine: Engine) -> dict[str, list[Entry]]:
    """A mirror engine's shared collections, comparable with ScriptedLeader.shared_state()."""
    return {name: engine.collection_entries(name) for name in sorted(engine.shared_names)}


def leader_state(leader: ScriptedLeader) -> dict[str, list[Entry]]:
    state = leader.shared_state()
    return {name: state[name] for name in sorted(state)}
