"""Dynamic dependency tracking: who read which key, so a change reruns exactly its readers.

A *reader* is an owner (a map node or a lazy collection) plus one of the owner's key ids: the
source key whose mapper call, or the lazy key whose computation, performed the read. Every
readable store keeps, per key, a dict owner -> BitMap of reader ids (pyroaring keeps these sets
small and fast to union). An owner records what each of its ids read, so a rerun can drop the
edges it no longer needs: dependencies stay exact as code paths change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from pyroaring import BitMap

from graph.keys import HKey

if TYPE_CHECKING:
    from graph.tick import Tick


class ReaderOwner(Protocol):
    def invalidate(self, ids: BitMap) -> None:
        """Some key the given reader ids read has changed."""

    def reader_id(self, key: HKey) -> int:
        """The id of the reader running for the owner's `key` (allocated on first read)."""

    def record_read(self, rid: int, store: Readable, key: HKey) -> None:
        """Remember that reader `rid` read `store[key]` (so the edge can be dropped later)."""


# The reader on whose behalf user code currently runs (owner, owner's key); None outside
# mapper and lazy calls.
current_reader: ContextVar[tuple[ReaderOwner, HKey] | None] = ContextVar(
    "skiff_current_reader", default=None
)


class Readable:
    """Mixin for stores whose keys can be read (and so depended on) by user code."""

    readers: dict[HKey, dict[ReaderOwner, BitMap]]

    def _init_readers(self) -> None:
        self.readers = {}

    def track(self, key: HKey) -> None:
        reader = current_reader.get()
        if reader is None:
            return
        owner, owner_key = reader
        rid = owner.reader_id(owner_key)
        per_key = self.readers.get(key)
        if per_key is None:
            per_key = self.readers[key] = {}
        bits = per_key.get(owner)
        if bits is None:
            bits = per_key[owner] = BitMap()
        if rid not in bits:
            bits.add(rid)
            owner.record_read(rid, self, key)

    def drop_reader(self, key: HKey, owner: ReaderOwner, rid: int) -> None:
        per_key = self.readers.get(key)
        if per_key is None:
            return
        bits = per_key.get(owner)
        if bits is None:
            return
        bits.discard(rid)
        if not bits:
            del per_key[owner]
            if not per_key:
                del self.readers[key]

    def add_reader(self, key: HKey, owner: ReaderOwner, rid: int) -> None:
        self.readers.setdefault(key, {}).setdefault(owner, BitMap()).add(rid)

    def notify_readers(self, key: HKey) -> None:
        per_key = self.readers.get(key)
        if per_key:
            for owner, bits in list(per_key.items()):
                owner.invalidate(BitMap(bits))


_FREE: Any = object()  # a released id's slot (not None: None is a valid key, `null`)


class KeyIds:
    """Interns keys as small ints so sets of them fit in roaring bitmaps."""

    __slots__ = ("_free", "ids", "keys")

    def __init__(self) -> None:
        self.ids: dict[HKey, int] = {}
        self.keys: list[Any] = []
        self._free: list[int] = []

    def id_of(self, key: HKey) -> int:
        rid = self.ids.get(key)
        if rid is None:
            if self._free:
                rid = self._free.pop()
                self.keys[rid] = key
            else:
                rid = len(self.keys)
                self.keys.append(key)
            self.ids[key] = rid
        return rid

    def keys_of(self, ids: BitMap) -> Iterator[HKey]:
        """The keys of the given ids that are still allocated."""
        keys = self.keys
        for rid in ids:
            key = keys[rid]
            if key is not _FREE:
                yield key

    def release(self, key: HKey) -> int | None:
        rid = self.ids.pop(key, None)
        if rid is not None:
            self.keys[rid] = _FREE
            self._free.append(rid)
        return rid

    def restore(self, key: HKey, rid: int) -> None:
        """Undo of `release`: the key gets its old id back."""
        self._free.remove(rid)
        self.keys[rid] = key
        self.ids[key] = rid


class ReadLog:
    """Per owner: what each reader id read, for dropping and restoring edges."""

    __slots__ = ("owner", "reads")

    def __init__(self, owner: ReaderOwner) -> None:
        self.owner = owner
        self.reads: dict[int, list[tuple[Readable, HKey]]] = {}

    def record(self, rid: int, store: Readable, key: HKey) -> None:
        self.reads.setdefault(rid, []).append((store, key))

    def clear(self, rid: int, tick: Tick | None) -> None:
        """Drop every edge of `rid`; journaled so a rolled-back tick restores them."""
        old = self.reads.pop(rid, None) or []
        for store, key in old:
            store.drop_reader(key, self.owner, rid)
        if tick is not None:
            tick.journal.append((self._restore, (rid, old)))

    def _restore(self, rid: int, old: list[tuple[Readable, HKey]]) -> None:
        # Undo of a rerun: first drop the edges the failed rerun added, then put the old back.
        for store, key in self.reads.pop(rid, []):
            store.drop_reader(key, self.owner, rid)
        if old:
            self.reads[rid] = old
        for store, key in old:
            store.add_reader(key, self.owner, rid)

    def clear_all(self) -> None:
        for rid in list(self.reads):
            self.clear(rid, None)
