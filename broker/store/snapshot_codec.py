"""Snapshot records: the manifest and the chunks of a snapshot hash (keyspace.snapshot()).

A snapshot at version V holds every input collection (what a leader taking over rebuilds from)
and every shared collection (what a follower bootstraps from), each split in chunks of at most
`chunk_size` entries so a million-key state is many ~MB values, never one giant one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from broker.json_bytes import dumps
from broker.store.codec import CodecError, decode_entries, encode_entries, loads
from broker.store.keyspace import SnapshotPart, snapshot_chunk_field
from broker.types import Entry

__all__ = [
    "CollectionChunks",
    "SnapshotManifest",
    "decode_chunk",
    "encode_chunk",
    "snapshot_fields",
]

encode_chunk = encode_entries
decode_chunk = decode_entries

_PARTS: tuple[SnapshotPart, ...] = ("input", "shared")


@dataclass(frozen=True, slots=True)
class CollectionChunks:
    """Where one collection of a snapshot lives: `chunks` fields holding `entries` entries."""

    part: SnapshotPart
    name: str
    entries: int
    chunks: int

    def fields(self) -> list[str]:
        """The snapshot-hash fields of this collection's chunks, in key order."""
        return [snapshot_chunk_field(self.part, self.name, i) for i in range(self.chunks)]


@dataclass(frozen=True, slots=True)
class SnapshotManifest:
    """The `manifest` field of a snapshot hash: what the chunks are and how many.

    A reader checks `epoch` and `version` against what it expects before trusting the chunks.
    """

    epoch: str
    version: int
    term: int
    created_ms: int
    chunk_size: int
    collections: tuple[CollectionChunks, ...]

    @classmethod
    def plan(
        cls,
        *,
        epoch: str,
        version: int,
        term: int,
        created_ms: int,
        chunk_size: int,
        inputs: Mapping[str, Sequence[Entry]],
        shared: Mapping[str, Sequence[Entry]],
    ) -> SnapshotManifest:
        """The manifest describing these contents cut in chunks of `chunk_size`."""
        if chunk_size < 1:
            raise CodecError(f"chunk_size must be >= 1, got {chunk_size}")
        parts: tuple[tuple[SnapshotPart, Mapping[str, Sequence[Entry]]], ...] = (
            ("input", inputs),
            ("shared", shared),
        )
        collections = tuple(
            CollectionChunks(part, name, len(entries), -(-len(entries) // chunk_size))
            for part, contents in parts
            for name, entries in sorted(contents.items())
        )
        return cls(epoch, version, term, created_ms, chunk_size, collections)

    def part(self, part: SnapshotPart) -> tuple[CollectionChunks, ...]:
        return tuple(c for c in self.collections if c.part == part)

    def encode(self) -> bytes:
        return dumps(
            {
                "epoch": self.epoch,
                "version": self.version,
                "term": self.term,
                "created_ms": self.created_ms,
                "chunk_size": self.chunk_size,
                "collections": [[c.part, c.name, c.entries, c.chunks] for c in self.collections],
            }
        )

    @classmethod
    def decode(cls, data: bytes | str) -> SnapshotManifest:
        raw = loads(data)
        try:
            collections = tuple(_collection(item) for item in raw["collections"])
            manifest = cls(
                epoch=_str(raw["epoch"]),
                version=_int(raw["version"]),
                term=_int(raw["term"]),
                created_ms=_int(raw["created_ms"]),
                chunk_size=_int(raw["chunk_size"]),
                collections=collections,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CodecError(f"not a snapshot manifest: {err!r}") from err
        return manifest


def snapshot_fields(
    manifest: SnapshotManifest,
    inputs: Mapping[str, Sequence[Entry]],
    shared: Mapping[str, Sequence[Entry]],
) -> Iterator[tuple[str, bytes]]:
    """The chunk fields of a snapshot, lazily: the whole state is never encoded at once."""
    contents = {"input": inputs, "shared": shared}
    for collection in manifest.collections:
        entries = contents[collection.part][collection.name]
        if len(entries) != collection.entries:
            raise CodecError(f"{collection.part} {collection.name!r} changed size while chunking")
        size = manifest.chunk_size
        for index, field in enumerate(collection.fields()):
            yield field, encode_chunk(entries[index * size : (index + 1) * size])


def _collection(item: object) -> CollectionChunks:
    if not isinstance(item, list) or len(item) != 4 or item[0] not in _PARTS:
        raise ValueError(f"bad collection record {item!r}")
    part: SnapshotPart = "input" if item[0] == "input" else "shared"
    return CollectionChunks(part, _str(item[1]), _int(item[2]), _int(item[3]))


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value
