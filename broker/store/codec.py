"""What skiff writes to Redis, as frozen dataclasses with pure encode()/decode().

Stream entries and the meta hash are flat field maps so `redis-cli XRANGE` / `HGETALL` read them
without tooling; collection contents are JSON lists of `[key, [values]]` entries (docs/protocol.md's
wire shape). Field maps use bytes because the broker's Redis clients run with
`decode_responses=False`: values are JSON, decoding them twice would only cost time. The snapshot
records live in broker/store/snapshot_codec.py, heartbeats in broker/store/node_record.py.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker import json_bytes
from broker.errors import BrokerError
from broker.json_bytes import dumps
from broker.runtime.clock import now_ms
from broker.store.keyspace import LAYOUT_FORMAT
from broker.types import Entry, Json

Fields = dict[bytes, bytes]
# What redis-py hands back for a hash or stream entry: bytes with decode_responses=False (what
# the broker uses), str otherwise; decoding accepts both.
RawFields = Mapping[Any, Any]
Changes = Mapping[str, tuple[Entry, ...]]

#: Stream-entry field prefix of one collection's changes: `c:<collection>`.
COLLECTION_FIELD = "c:"


class CodecError(BrokerError, ValueError):
    """Bytes read from Redis are not what skiff writes there (corrupt, foreign or newer format)."""


def loads(data: bytes | str) -> Json:
    try:
        return json_bytes.loads(data)
    except json_bytes.JsonDecodeError as err:
        raise CodecError(f"not JSON: {err}") from err


def encode_entries(entries: Iterable[Entry]) -> bytes:
    """`[[key, [values]], ...]` — one collection's entries or changes."""
    return dumps(list(entries) if not isinstance(entries, list | tuple) else entries)


def decode_entries(data: bytes | str) -> tuple[Entry, ...]:
    raw = loads(data)
    if not isinstance(raw, list):
        raise CodecError("entries must be a JSON list")
    # Checked and converted in one pass: snapshots decode a million entries through here.
    out = tuple((item[0], item[1]) for item in raw if _is_entry(item))
    if len(out) != len(raw):
        raise CodecError("every entry must be [key, [values...]]")
    return out


def _is_entry(item: Json) -> bool:
    return type(item) is list and len(item) == 2 and type(item[1]) is list


def new_epoch() -> str:
    """A fresh replication epoch: the creation time (base 36 ms, so epochs sort by age in a
    listing) and randomness (two leaders creating one in the same millisecond still differ)."""
    return f"{_base36(now_ms())}-{secrets.token_hex(3)}"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _text(fields: RawFields, name: str) -> str:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        raise CodecError(f"missing field {name!r}")
    try:
        return value.decode() if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError as err:
        raise CodecError(f"field {name!r} is not UTF-8") from err


def _int(fields: RawFields, name: str) -> int:
    text = _text(fields, name)
    try:
        return int(text)
    except ValueError as err:
        raise CodecError(f"field {name!r} is not an integer: {text!r}") from err


def _names(fields: RawFields, name: str) -> tuple[str, ...]:
    raw = loads(_text(fields, name))
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise CodecError(f"field {name!r} must be a JSON list of strings")
    return tuple(raw)


def _encode_changes(out: Fields, changes: Changes) -> Fields:
    # Sorted so equal changesets encode to equal bytes whatever order the engine produced.
    for name in sorted(changes):
        out[(COLLECTION_FIELD + name).encode()] = encode_entries(changes[name])
    return out


def _decode_changes(fields: RawFields) -> dict[str, tuple[Entry, ...]]:
    changes = {}
    for key, value in fields.items():
        name = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
        if name.startswith(COLLECTION_FIELD):
            changes[name[len(COLLECTION_FIELD) :]] = decode_entries(value)
    return changes


@dataclass(frozen=True, slots=True)
class DeltaEntry:
    """One version of the shared collections, as an entry of the delta stream.

    `term` is the fencing token of the leader that published it, `ts_ms` the leader's clock at
    publication (followers derive their lag in milliseconds from it).
    """

    version: int
    epoch: str
    term: int
    ts_ms: int
    changes: Changes = field(default_factory=dict)

    def encode(self) -> Fields:
        out: Fields = {
            b"version": str(self.version).encode(),
            b"epoch": self.epoch.encode(),
            b"term": str(self.term).encode(),
            b"ts": str(self.ts_ms).encode(),
        }
        return _encode_changes(out, self.changes)

    @classmethod
    def decode(cls, fields: RawFields) -> DeltaEntry:
        return cls(
            version=_int(fields, "version"),
            epoch=_text(fields, "epoch"),
            term=_int(fields, "term"),
            ts_ms=_int(fields, "ts"),
            changes=_decode_changes(fields),
        )


@dataclass(frozen=True, slots=True)
class InputLogEntry:
    """The write batch that produced `version`, as an entry of the input log.

    A leader taking over replays these on top of the snapshot's input collections.
    """

    version: int
    term: int
    ts_ms: int
    writes: Changes = field(default_factory=dict)
    idempotency_key: str | None = None

    def encode(self) -> Fields:
        out: Fields = {
            b"version": str(self.version).encode(),
            b"term": str(self.term).encode(),
            b"ts": str(self.ts_ms).encode(),
        }
        if self.idempotency_key is not None:
            out[b"idem"] = self.idempotency_key.encode()
        return _encode_changes(out, self.writes)

    @classmethod
    def decode(cls, fields: RawFields) -> InputLogEntry:
        return cls(
            version=_int(fields, "version"),
            term=_int(fields, "term"),
            ts_ms=_int(fields, "ts"),
            writes=_decode_changes(fields),
            idempotency_key=_text(fields, "idem")
            if (b"idem" in fields or "idem" in fields)
            else None,
        )


@dataclass(frozen=True, slots=True)
class Meta:
    """The meta hash: what a node reads first to find everything else.

    `head` is the newest published version (updated by the fenced append), `snapshot` the version
    of the current snapshot (there always is one: an epoch starts by publishing it).
    """

    service: str
    epoch: str
    shared: tuple[str, ...]
    inputs: tuple[str, ...]
    head: int
    snapshot: int
    created_ms: int
    head_ms: int = 0
    snapshot_ms: int = 0
    format: int = LAYOUT_FORMAT

    def encode(self) -> Fields:
        return {
            b"format": str(self.format).encode(),
            b"service": self.service.encode(),
            b"epoch": self.epoch.encode(),
            b"shared": dumps(list(self.shared)),
            b"inputs": dumps(list(self.inputs)),
            b"head": str(self.head).encode(),
            b"head_ms": str(self.head_ms).encode(),
            b"snapshot": str(self.snapshot).encode(),
            b"snapshot_ms": str(self.snapshot_ms).encode(),
            b"created_ms": str(self.created_ms).encode(),
        }

    @classmethod
    def decode(cls, fields: RawFields) -> Meta:
        fmt = _int(fields, "format")
        if fmt != LAYOUT_FORMAT:
            raise CodecError(f"keyspace format {fmt} is not {LAYOUT_FORMAT} (upgrade skiff?)")
        return cls(
            service=_text(fields, "service"),
            epoch=_text(fields, "epoch"),
            shared=_names(fields, "shared"),
            inputs=_names(fields, "inputs"),
            head=_int(fields, "head"),
            snapshot=_int(fields, "snapshot"),
            created_ms=_int(fields, "created_ms"),
            head_ms=_int(fields, "head_ms"),
            snapshot_ms=_int(fields, "snapshot_ms"),
            format=fmt,
        )


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease key's value, `<token>:<holder>`. The token comes first because it is digits
    only, so a holder containing `:` still splits unambiguously."""

    token: int
    holder: str

    @property
    def node_id(self) -> str:
        """The node id inside the holder name (see `unique_holder`)."""
        return holder_node(self.holder)

    def __post_init__(self) -> None:
        if self.token < 1 or not self.holder:
            raise CodecError(f"invalid lease: token={self.token} holder={self.holder!r}")

    def encode(self) -> bytes:
        return f"{self.token}:{self.holder}".encode()

    @classmethod
    def decode(cls, data: bytes | str) -> LeaseRecord:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        token, sep, holder = text.partition(":")
        if not sep or not token.isdigit():
            raise CodecError(f"not a lease record: {data!r}")
        return cls(int(token), holder)


def unique_holder(node_id: str | None = None) -> str:
    """A lease holder name unique to this process: `<node id>/<pid>-<random>`.

    The node id alone is not enough: a restarted pod reuses its hostname while the previous
    process may still be alive (paused), and the two must not pass for each other.
    """
    node = node_id or socket.gethostname()
    return f"{node}/{os.getpid()}-{secrets.token_hex(3)}"


def holder_node(holder: str) -> str:
    """The node id in a lease holder name `<node id>/<pid>-<random>` (`unique_holder`)."""
    node, sep, _ = holder.rpartition("/")
    return node if sep else holder
