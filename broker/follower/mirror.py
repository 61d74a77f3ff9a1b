"""A follower's mirror: the shared collections of a snapshot, loaded into an engine.

The mirror engine's inputs are the leader's shared collections; the service's resources are
instantiated over them exactly as on the leader, so every resource is served locally.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from broker.store.codec import Meta
from broker.store.keyspace import Keyspace
from broker.store.snapshots import read_manifest, read_snapshot
from broker.types import Entry
from graph import Context, EagerCollection, Engine, Service
from graph.external import ExternalListener


@dataclass(frozen=True, slots=True)
class MirrorSnapshot:
    """The shared part of the snapshot at (`epoch`, `version`)."""

    epoch: str
    version: int
    shared: dict[str, list[Entry]]


async def read_mirror_snapshot(redis: Redis, keyspace: Keyspace, meta: Meta) -> MirrorSnapshot:
    """The shared collections of meta's current snapshot (every name of `meta.shared`; one the
    manifest lacks is empty).

    Raises SnapshotMissingError when the snapshot was replaced and expired while being read (the
    caller reads meta again), RedisCallError on a Redis failure.
    """
    manifest = await read_manifest(redis, keyspace, meta.epoch, meta.snapshot)
    loaded = await read_snapshot(redis, keyspace, manifest, "shared")
    shared = {name: loaded.get(name, []) for name in meta.shared}
    return MirrorSnapshot(meta.epoch, meta.snapshot, shared)


def _identity(
    inputs: Mapping[str, EagerCollection], context: Context
) -> Mapping[str, EagerCollection]:
    return inputs


def build_mirror(
    service: Service, snapshot: MirrorSnapshot, listener: ExternalListener | None = None
) -> Engine:
    """A fresh mirror engine holding `snapshot` at its version (`listener`: told of the
    external collections its resource instances open; see graph/external.py).

    The state is loaded as the engine's initial inputs (no tick, no undo journal: the cheap way
    to take a million keys), then an empty tick moves the engine to the snapshot's version; a
    snapshot at version 0 (an epoch's first) needs no tick at all.
    """
    mirror_service = dataclasses.replace(service, inputs=snapshot.shared, create_graph=_identity)
    engine = Engine.for_service(mirror_service, listener=listener)
    if snapshot.version > 0:
        engine.apply({}, version=snapshot.version)
    return engine
