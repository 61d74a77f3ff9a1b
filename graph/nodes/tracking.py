"""Dynamic dependency tracking: who read which key, so a change reruns exactly its readers.

A *reader* is an owner (a map node or a lazy collection) plus one of the owner's key ids: the
source key whose mapper call, or the lazy key whose computation, performed the read. Every
readable store keeps, per key, a dict owner -> reader ids (one id as a bare int, several as a
pyroaring BitMap, which keeps such sets small and fast to union). An owner records what each
of its ids read, so a rerun can drop the edges it no longer needs: dependencies stay exact as
code paths change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from pyroaring import BitMap

from graph.keys import HKey

if TYPE_CHECKING:
    from graph.tick import Tick


class ReaderOwner(Protocol):
    def invalidate(self, ids: Iterable[int]) -> None:
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

# An owner's reader ids at one key: a bare int while there is one (the common case: a mapper
# reading another collection at a key of its own), a BitMap once there are several.
ReaderIds = int | BitMap


def _bitmap(ids: ReaderIds) -> BitMap:
    return BitMap([ids]) if isinstance(ids, int) else BitMap(ids)


class Readable:
    """Mixin for stores whose keys can be read (and so depended on) by user code."""

    __slots__ = ("_edges",)

    # key -> owner -> reader ids; None until the first read (most nodes are never read).
    _edges: dict[HKey, dict[ReaderOwner, ReaderIds]] | None

    def _init_readers(self) -> None:
        self._edges = None

    @property
    def readers(self) -> dict[HKey, dict[ReaderOwner, BitMap]]:
        """The dependency edges into this store: key -> owner -> reader ids (a copy)."""
        return {
            key: {owner: _bitmap(ids) for owner, ids in per_key.items()}
            for key, per_key in (self._edges or {}).items()
        }

    def track(self, key: HKey) -> None:
        reader = current_reader.get()
        if reader is None:
            return
        owner, owner_key = reader
        rid = owner.reader_id(owner_key)
        if self._add_edge(key, owner, rid):
            owner.record_read(rid, self, key)

    def _add_edge(self, key: HKey, owner: ReaderOwner, rid: int) -> bool:
        """Add the edge key -> (owner, rid); False if it was there."""
        edges = self._edges
        if edges is None:
            edges = self._edges = {}
        per_key = edges.get(key)
        if per_key is None:
            edges[key] = {owner: rid}
            return True
        ids = per_key.get(owner)
        if ids is None:
            per_key[owner] = rid
        elif isinstance(ids, int):
            if ids == rid:
                return False
            per_key[owner] = BitMap((ids, rid))
        elif rid in ids:
            return False
        else:
            ids.add(rid)
        return True

    def drop_reader(self, key: HKey, owner: ReaderOwner, rid: int) -> None:
        edges = self._edges
        if edges is None:
            return
        per_key = edges.get(key)
        if per_key is None:
            return
        ids = per_key.get(owner)
        if ids is None:
            return
        if isinstance(ids, int):
            if ids != rid:
                return
            del per_key[owner]
        else:
            ids.discard(rid)
            if len(ids) > 1:
                return
            if ids:
                per_key[owner] = ids.min()
                return
            del per_key[owner]
        if not per_key:
            del edges[key]

    def add_reader(self, key: HKey, owner: ReaderOwner, rid: int) -> None:
        self._add_edge(key, owner, rid)

    def notify_readers(self, key: HKey) -> None:
        edges = self._edges
        per_key = edges.get(key) if edges else None
        if per_key:
            # Copies: invalidating may drop edges of this very key.
            for owner, ids in list(per_key.items()):
                owner.invalidate((ids,) if isinstance(ids, int) else BitMap(ids))


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

    def keys_of(self, ids: Iterable[int]) -> Iterator[HKey]:
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
    """Per owner: what each reader id read, for dropping and restoring edges. The reads of one
    id are flat, [store, key, store, key, ...] (a pair per read would double its size), and a
    tuple once the run that made them is over (`seal`)."""

    __slots__ = ("owner", "reads")

    def __init__(self, owner: ReaderOwner) -> None:
        self.owner = owner
        self.reads: dict[int, list[Any] | tuple[Any, ...]] = {}

    def record(self, rid: int, store: Readable, key: HKey) -> None:
        reads = self.reads.get(rid)
        if reads is None:
            self.reads[rid] = [store, key]
        elif type(reads) is list:
            reads += (store, key)
        else:
            self.reads[rid] = [*reads, store, key]

    def seal(self, rid: int) -> None:
        """The run of `rid` is over: keep its reads as a tuple, smaller than a list."""
        reads = self.reads.get(rid)
        if type(reads) is list:
            self.reads[rid] = tuple(reads)

    def _drop(self, rid: int, reads: list[Any] | tuple[Any, ...]) -> None:
        owner = self.owner
        for i in range(0, len(reads), 2):
            reads[i].drop_reader(reads[i + 1], owner, rid)

    def clear(self, rid: int, tick: Tick | None) -> None:
        """Drop every edge of `rid`; journaled so a rolled-back tick restores them."""
        old = self.reads.pop(rid, ())
        self._drop(rid, old)
        if tick is not None:
            tick.journal.append((self._restore, (rid, old)))

    def forget(self, rid: int) -> None:
        """Drop every edge of `rid`, not journaled (a failed or undone computation's)."""
        self._drop(rid, self.reads.pop(rid, ()))

    def _restore(self, rid: int, old: list[Any] | tuple[Any, ...]) -> None:
        # Undo of a rerun: first drop the edges the failed rerun added, then put the old back.
        self.forget(rid)
        if old:
            self.reads[rid] = old
        owner = self.owner
        for i in range(0, len(old), 2):
            old[i].add_reader(old[i + 1], owner, rid)

    def clear_all(self) -> None:
        for rid in list(self.reads):
            self.clear(rid, None)
