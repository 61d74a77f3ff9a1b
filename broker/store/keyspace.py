"""The Redis key layout of one service: the only place a key name is spelled.

Every key of service `S` starts with `skiff:{S}:`. The braces are a Redis Cluster hash tag: only `S`
is hashed, so all of a service's keys live in one slot and the Lua scripts of
broker/store/scripts.py may touch several of them atomically. docs/redis.md documents each key's
type and fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from broker.errors import BrokerError

#: Bumped when the layout or an encoding changes incompatibly; stored in the meta hash.
LAYOUT_FORMAT: Final = 1

SnapshotPart = Literal["input", "shared"]
#: What a rate limit counts: stream creations, writes.
RateAction = Literal["streams", "writes"]

# A service name appears inside the hash tag, so it must not contain a brace (a `}` would end
# the tag early and split the service over slots); whitespace and control characters would make
# redis-cli sessions and logs ambiguous.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
# Glob metacharacters of Redis' MATCH/KEYS patterns, escaped in `pattern`.
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_MAX_ID_BYTES: Final = 200


class KeyspaceError(BrokerError, ValueError):
    """A name cannot be part of a key (bad service name, empty or oversized id)."""


def _check_id(kind: str, value: str) -> str:
    # Idempotency keys and stream ids come from clients; a bound keeps one request from
    # creating megabyte-long key names.
    if not value or len(value.encode()) > _MAX_ID_BYTES:
        raise KeyspaceError(f"{kind} must be 1..{_MAX_ID_BYTES} bytes, got {len(value)} chars")
    return value


@dataclass(frozen=True, slots=True)
class Keyspace:
    """The keys of one service. Pure: builds names, never talks to Redis."""

    service: str

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.fullmatch(self.service):
            raise KeyspaceError(
                f"service name must match {_SERVICE_NAME.pattern}, got {self.service!r}"
            )

    @property
    def prefix(self) -> str:
        """`skiff:{S}:` — every key of the service starts with it."""
        return f"{_PREFIX_HEAD}{self.service}}}:"

    @property
    def pattern(self) -> str:
        """A SCAN/KEYS pattern matching exactly this service's keys."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "*"

    @property
    def meta(self) -> str:
        """Hash: format, service, epoch, shared, inputs, head, head_ms, snapshot, ..."""
        return self.prefix + "meta"

    @property
    def lease(self) -> str:
        """String `<token>:<holder>` with a PX expiry: who leads, under which fencing token."""
        return self.prefix + "lease"

    @property
    def fence(self) -> str:
        """String counter; INCR hands out fencing tokens (the leader's `term`)."""
        return self.prefix + "fence"

    @property
    def deltas(self) -> str:
        """Stream: one entry per version, id `<version>-0`, the shared collections' changes."""
        return self.prefix + "deltas"

    @property
    def inputs(self) -> str:
        """Stream: the input log, id `<version>-0`, the write batch that produced the version."""
        return self.prefix + "inputs"

    @property
    def nodes(self) -> str:
        """Sorted set: node id -> last heartbeat (ms); enumerates `node(id)` keys."""
        return self.prefix + "nodes"

    def snapshot(self, epoch: str, version: int) -> str:
        """Hash: `manifest` plus one field per chunk (see `snapshot_chunk_field`).

        The epoch is part of the name so a new epoch republishing at the same version never
        writes into the snapshot followers of the old epoch may still be reading.
        """
        if version < 0:
            raise KeyspaceError(f"snapshot version must be >= 0, got {version}")
        return f"{self.prefix}snap:{_check_id('epoch', epoch)}:{version}"

    def idempotency(self, key: str) -> str:
        """String (with TTL): the version at which the write carrying `key` was applied."""
        return self.prefix + "idem:" + _check_id("idempotency key", key)

    def node(self, node_id: str) -> str:
        """String (with TTL): the node's latest heartbeat record (codec.NodeRecord)."""
        return self.prefix + "node:" + _check_id("node id", node_id)

    def stream(self, stream_id: str) -> str:
        """String (with TTL): the registry record of one SSE stream id (resource, params, host)."""
        return self.prefix + "stream:" + _check_id("stream id", stream_id)

    def placement(self, instance: str) -> str:
        """String (with TTL): the node hosting the resource instance with digest `instance` —
        the proxy's hint for sending identical `(resource, params)` streams to one follower."""
        return self.prefix + "placement:" + _check_id("instance digest", instance)

    def rate(self, action: RateAction, client: str) -> str:
        """String (with TTL): the theoretical arrival time (ms, Redis clock) of one client's
        requests of `action`, the state of its rate limit (broker/store/rate_limit.py).
        `client` is the proxy's client key, e.g. `addr:203.0.113.7` (proxy/identity.py)."""
        return f"{self.prefix}rate:{action}:{_check_id('client key', client)}"


#: Keys whose presence marks a service in a Redis database: `meta` once a leader initialised
#: its keyspace, `nodes` once a node announced itself.
ServiceMarker = Literal["meta", "nodes"]
_PREFIX_HEAD: Final = "skiff:{"


def services_pattern(marker: ServiceMarker) -> str:
    """A SCAN pattern matching the `marker` key of every service."""
    return f"{_PREFIX_HEAD}*}}:{marker}"


def service_of(key: str, marker: ServiceMarker) -> str | None:
    """The service whose `marker` key `key` is, or None when it is not one."""
    tail = f"}}:{marker}"
    if not (key.startswith(_PREFIX_HEAD) and key.endswith(tail)):
        return None
    name = key[len(_PREFIX_HEAD) : -len(tail)]
    return name if _SERVICE_NAME.fullmatch(name) else None


#: Field of a snapshot hash holding the encoded codec.SnapshotManifest.
MANIFEST_FIELD: Final = "manifest"


def snapshot_chunk_field(part: SnapshotPart, collection: str, index: int) -> str:
    """Field of a snapshot hash holding chunk `index` of one collection.

    `part` separates an input collection from a shared one of the same name: followers load only
    the shared part, a leader taking over loads the input part.
    """
    if index < 0:
        raise KeyspaceError(f"chunk index must be >= 0, got {index}")
    return f"{part}:{collection}:{index}"


def stream_id_of(version: int) -> str:
    """The Redis stream entry id of `version` in the delta stream and the input log."""
    if version < 1:
        raise KeyspaceError(f"stream entries start at version 1, got {version}")
    return f"{version}-0"


def version_of(stream_id: bytes | str) -> int:
    """The version a delta/input stream entry id stands for (inverse of `stream_id_of`)."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, sep, seq = text.partition("-")
    if not sep or seq != "0" or not ms.isdigit():
        raise KeyspaceError(f"not a skiff stream id: {text!r}")
    return int(ms)
