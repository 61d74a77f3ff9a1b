"""MapNode: runs a mapper per source key and tracks each output key's contributors.

An output key's values are the concatenation, in source-key order, of what each source key
emitted for it. Contributions are stored per (output key, source key), so a rerun of one source
key touches only its own contributions and hands consumers a precise (removed, added) delta —
a reduce downstream never rescans a key with many values. The concatenated list is only built
when somebody reads it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from graph.errors import GraphError, NotJsonError, UserCodeError
from graph.keys import HKey, check_json, hkey, same_json, sort_key, unkey
from graph.nodes.node import EMPTY, Node
from graph.nodes.operators import Operator, pend
from graph.nodes.tracking import KeyIds, Readable, ReadLog, current_reader
from graph.values import Values

if TYPE_CHECKING:
    from graph.host import Host
    from graph.values import Delta


@functools.cache
def takes_context(cls: type[Any]) -> bool:
    """Whether `cls.map_entry` takes a third positional argument, the context (as Skip's
    `mapEntry(key, values, context)` does). Decided once per mapper class."""
    try:
        signature = inspect.signature(cls.map_entry)
    except (AttributeError, TypeError, ValueError):
        return False
    kinds = [p.kind for p in signature.parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    # self, key, values, context
    return sum(kind in positional for kind in kinds) >= 4


class MapFn(Protocol):
    """What MapNode calls: graph.api.Mapper's interface (a protocol, so that the engine's
    nodes do not import the user-facing API built on them)."""

    def map_entry(self, key: Any, values: Values) -> Iterable[tuple[Any, Any]]: ...


# contrib[o] is the values alone while `o` is fed by the source key `o` itself only (a map
# that keeps keys: the most compact), (source_key, values) while one other source key feeds
# it, and a dict source_key -> values once several do.
Contrib = list[Any] | tuple[HKey, list[Any]] | dict[HKey, list[Any]]


def _single(out: HKey, src: HKey, values: list[Any]) -> Contrib:
    return values if src is out or src == out else (src, values)


def _split_single(out: HKey, c: Contrib) -> tuple[HKey, list[Any]]:
    """(source key, values) of a contribution by a single source key."""
    if type(c) is list:
        return out, c
    assert type(c) is tuple
    return c


# What a source key emitted last, when absent from `emitted`. (Not None: None is a valid key.)
_NOTHING: Any = object()


class MapNode(Operator):
    __slots__ = ("cache", "context", "contrib", "emitted", "ids", "log", "mapper", "pending")

    def __init__(self, engine: Host, source: Node, mapper: MapFn) -> None:
        super().__init__(engine, f"{type(mapper).__name__}")
        self.mapper = mapper
        # Skip's mappers take the context as a third argument; ours may (takes_context).
        self.context: Any = engine.context if takes_context(type(mapper)) else None
        self.contrib: dict[HKey, Contrib] = {}
        # source key -> its output key, or a list of them (keys are never lists: arrays are
        # tuples). Absent when it emitted nothing, or only its own key (see `_emitted`): a map
        # that keeps keys stores nothing here.
        self.emitted: dict[HKey, Any] = {}
        # The fields below stay None until needed: many live instances each hold a map.
        # Concatenated values of the keys several source keys feed.
        self.cache: dict[HKey, list[Any]] | None = None
        # Keys to rerun, in the order they were invalidated (a dict: deterministic, unlike a set).
        self.pending: dict[HKey, None] | None = None
        # Reader ids and what each read: only for a mapper that reads other collections.
        self.ids: KeyIds | None = None
        self.log: ReadLog | None = None
        self._attach(source)
        for key in list(source.keys()):
            self.rerun(key)

    # -- storage ------------------------------------------------------------------------
    def get(self, key: HKey) -> list[Any] | None:
        c = self.contrib.get(key)
        if c is None:
            return None
        if type(c) is list:
            return c
        if type(c) is tuple:
            return c[1]
        cache = self.cache
        if cache is None:
            cache = self.cache = {}
        cached = cache.get(key)
        if cached is None:
            cached = []
            assert isinstance(c, dict)
            for src in sorted(c, key=sort_key):
                cached.extend(c[src])
            cache[key] = cached
        return cached

    def keys(self) -> Iterable[HKey]:
        return self.contrib.keys()

    def has(self, key: HKey) -> bool:
        return key in self.contrib

    def __len__(self) -> int:
        return len(self.contrib)

    def _put(self, out: HKey, src: HKey, values: list[Any] | None) -> list[Any] | None:
        """Set (or remove, with None) what `src` contributes to `out`; returns the old part."""
        contrib = self.contrib
        c = contrib.get(out)
        old: list[Any] | None
        if c is None:
            old = None
            if values:
                contrib[out] = _single(out, src, values)
                self._key_added(out)
        elif type(c) is not dict:
            one, part = _split_single(out, c)
            if one == src:
                old = part
                if values:
                    contrib[out] = _single(out, src, values)
                else:
                    del contrib[out]
                    self._key_removed(out)
            else:
                old = None
                if values:
                    contrib[out] = {one: part, src: values}
        else:
            old = c.get(src)
            if values:
                c[src] = values
            else:
                c.pop(src, None)
                if len(c) == 1:
                    one, part = next(iter(c.items()))
                    contrib[out] = _single(out, one, part)
            if self.cache is not None:
                self.cache.pop(out, None)
        return old

    def _set_part(self, out: HKey, src: HKey, values: list[Any] | None) -> None:
        if values is not None and same_json(self._part(out, src), values):
            return
        self._remember_old(out)
        existed = out in self.contrib
        old = self._put(out, src, values)
        if old is None and values is None:
            return
        tick = self.engine.tick
        if tick is not None:
            tick.journal.append((self._put, (out, src, old)))
        self._changed(out, (old or EMPTY, values or EMPTY), existed != (out in self.contrib))

    def _part(self, out: HKey, src: HKey) -> list[Any] | None:
        c = self.contrib.get(out)
        if c is None:
            return None
        if type(c) is dict:
            return c.get(src)
        one, part = _split_single(out, c)
        return part if one == src else None

    def _emitted(self, src: HKey) -> Any:
        outs = self.emitted.get(src, _NOTHING)
        if outs is _NOTHING and self._part(src, src) is not None:
            return src
        return outs

    def _set_emitted(self, src: HKey, outs: Any) -> None:
        if outs is _NOTHING or (type(outs) is not list and outs == src):
            self.emitted.pop(src, None)
        else:
            self.emitted[src] = outs

    # -- dependency tracking -------------------------------------------------------------
    def reader_id(self, key: HKey) -> int:
        ids = self.ids
        if ids is None:
            ids = self.ids = KeyIds()
            self.log = ReadLog(self)
        return ids.id_of(key)

    def record_read(self, rid: int, store: Readable, key: HKey) -> None:
        assert self.log is not None  # reader_id came first
        self.log.record(rid, store, key)

    def _rid(self, src: HKey) -> int | None:
        return self.ids.ids.get(src) if self.ids is not None else None

    def _forget_reader(self, src: HKey) -> None:
        rid = self._rid(src)
        if rid is not None:
            assert self.ids is not None and self.log is not None
            self.log.forget(rid)
            self.ids.release(src)

    def invalidate(self, ids: Iterable[int]) -> None:
        assert self.ids is not None  # only readers that have ids are ever invalidated
        for key in self.ids.keys_of(ids):
            pend(self, key)

    # -- work -----------------------------------------------------------------------------
    def source_changed(self, key: HKey, delta: Delta) -> None:
        pend(self, key)

    def reset_pending(self) -> None:
        self.pending = None

    def process(self) -> None:
        pending, self.pending = self.pending, None
        for key in pending or ():
            self.rerun(key)

    def rerun(self, src: HKey) -> None:
        tick = self.engine.tick
        rid = self._rid(src)
        if rid is not None:
            assert self.log is not None
            self.log.clear(rid, tick)
        elif tick is not None:
            # Reads made by this run allocate an id; a rollback must forget them again.
            tick.journal.append((self._forget_reader, (src,)))
        values = self.sources[0].get(src)
        produced: dict[HKey, list[Any]] = {}
        if values:
            self._run_mapper(src, values, produced)
            ran = self._rid(src)
            if ran is not None:
                assert self.log is not None
                self.log.seal(ran)
        old_outs = self._emitted(src)
        if old_outs is not _NOTHING:
            for out in old_outs if type(old_outs) is list else (old_outs,):
                if out not in produced:
                    self._set_part(out, src, None)
        for out, vals in produced.items():
            self._set_part(out, src, vals)
        new_outs: Any
        if not produced:
            new_outs = _NOTHING
        elif len(produced) == 1:
            new_outs = next(iter(produced))
        else:
            new_outs = list(produced)
        if new_outs != old_outs or type(new_outs) is not type(old_outs):
            self._set_emitted(src, new_outs)
            if tick is not None:
                tick.journal.append((self._set_emitted, (src, old_outs)))
        if rid is not None and not values:
            assert self.ids is not None and self.log is not None
            if rid not in self.log.reads:
                self.ids.release(src)
                if tick is not None:
                    tick.journal.append((self.ids.restore, (src, rid)))

    def _run_mapper(self, src: HKey, values: list[Any], produced: dict[HKey, list[Any]]) -> None:
        mapper = self.mapper
        token = current_reader.set((self, src))
        try:
            if self.context is None:
                result: Any = mapper.map_entry(unkey(src), Values(values))
            else:
                with_context: Any = mapper.map_entry  # (key, values, context): see takes_context
                result = with_context(unkey(src), Values(values), self.context)
            if isinstance(result, str | bytes | Mapping):
                raise TypeError(f"map_entry must return (key, value) pairs, not {result!r}")
            for pair in result:
                # A 2-character string would unpack silently: insist on a real pair.
                if type(pair) is not tuple and type(pair) is not list:
                    raise TypeError(f"map_entry must produce (key, value) pairs, got {pair!r}")
                out, value = pair
                hout = hkey(out)
                if hout == src:
                    hout = src  # one key object, not a copy per map (keys are often tuples)
                check_json(value)
                part = produced.get(hout)
                if part is None:
                    produced[hout] = [value]
                else:
                    part.append(value)
        except UserCodeError:
            raise
        except NotJsonError as err:
            raise UserCodeError(
                f"mapper {type(mapper).__name__} produced a non-JSON key or value "
                f"for key {unkey(src)!r}: {err}"
            ) from err
        except (GraphError, Exception) as err:
            raise UserCodeError(
                f"mapper {type(mapper).__name__} failed on key {unkey(src)!r}: {err!r}"
            ) from err
        finally:
            current_reader.reset(token)

    def detach(self) -> None:
        super().detach()
        if self.log is not None:
            self.log.clear_all()
