"""MapNode: runs a mapper per source key and tracks each output key's contributors.

An output key's values are the concatenation, in source-key order, of what each source key
emitted for it. Contributions are stored per (output key, source key), so a rerun of one source
key touches only its own contributions and hands consumers a precise (removed, added) delta —
a reduce downstream never rescans a key with many values. The concatenated list is only built
when somebody reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pyroaring import BitMap

from graph.errors import GraphError, NotJsonError, UserCodeError
from graph.keys import HKey, check_json, hkey, same_json, sort_key, unkey
from graph.node import EMPTY, Delta, Node
from graph.operators import Operator
from graph.tracking import KeyIds, Readable, ReadLog, current_reader
from graph.values import Values

if TYPE_CHECKING:
    from collections.abc import Iterable

    from graph.api import Mapper
    from graph.engine import Engine

# contrib[o] is (source_key, values) while one source key feeds `o` (the common case, kept
# compact), and a dict source_key -> values once several do.
Contrib = tuple[HKey, list[Any]] | dict[HKey, list[Any]]

# emitted[src] is absent when `src` emits nothing. (Not None: None is a valid key, `null`.)
_NOTHING: Any = object()


class MapNode(Operator):
    def __init__(self, engine: Engine, source: Node, mapper: Mapper) -> None:
        super().__init__(engine, f"{type(mapper).__name__}")
        self.mapper = mapper
        self.contrib: dict[HKey, Contrib] = {}
        # source key -> its output key, or a list of them (keys are never lists: arrays are tuples)
        self.emitted: dict[HKey, Any] = {}
        self.cache: dict[HKey, list[Any]] = {}
        # Keys to rerun, in the order they were invalidated (a dict: deterministic, unlike a set).
        self.pending: dict[HKey, None] = {}
        self.ids = KeyIds()
        self.log = ReadLog(self)
        self._attach(source)
        for key in list(source.keys()):
            self.rerun(key)

    # -- storage ------------------------------------------------------------------------
    def get(self, key: HKey) -> list[Any] | None:
        c = self.contrib.get(key)
        if c is None:
            return None
        if type(c) is tuple:
            return c[1]
        cached = self.cache.get(key)
        if cached is None:
            cached = []
            assert isinstance(c, dict)
            for src in sorted(c, key=sort_key):
                cached.extend(c[src])
            self.cache[key] = cached
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
                contrib[out] = (src, values)
                self._key_added(out)
        elif type(c) is tuple:
            if c[0] == src:
                old = c[1]
                if values:
                    contrib[out] = (src, values)
                else:
                    del contrib[out]
                    self._key_removed(out)
            else:
                old = None
                if values:
                    contrib[out] = {c[0]: c[1], src: values}
        else:
            assert isinstance(c, dict)
            old = c.get(src)
            if values:
                c[src] = values
            else:
                c.pop(src, None)
                if len(c) == 1:
                    contrib[out] = next(iter(c.items()))
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
        if type(c) is tuple:
            return c[1] if c[0] == src else None
        assert isinstance(c, dict)
        return c.get(src)

    def _set_emitted(self, src: HKey, outs: Any) -> None:
        if outs is _NOTHING:
            self.emitted.pop(src, None)
        else:
            self.emitted[src] = outs

    # -- dependency tracking -------------------------------------------------------------
    def reader_id(self, key: HKey) -> int:
        return self.ids.id_of(key)

    def record_read(self, rid: int, store: Readable, key: HKey) -> None:
        self.log.record(rid, store, key)

    def _forget_reader(self, src: HKey) -> None:
        rid = self.ids.ids.get(src)
        if rid is not None:
            for store, key in self.log.reads.pop(rid, []):
                store.drop_reader(key, self, rid)
            self.ids.release(src)

    def invalidate(self, ids: BitMap) -> None:
        for key in self.ids.keys_of(ids):
            self.pending[key] = None
        self._schedule()

    # -- work -----------------------------------------------------------------------------
    def source_changed(self, key: HKey, delta: Delta) -> None:
        self.pending[key] = None
        self._schedule()

    def reset_pending(self) -> None:
        self.pending.clear()

    def process(self) -> None:
        pending, self.pending = self.pending, {}
        for key in pending:
            self.rerun(key)

    def rerun(self, src: HKey) -> None:
        tick = self.engine.tick
        rid = self.ids.ids.get(src)
        if rid is not None:
            self.log.clear(rid, tick)
        elif tick is not None:
            # Reads made by this run allocate an id; a rollback must forget them again.
            tick.journal.append((self._forget_reader, (src,)))
        values = self.sources[0].get(src)
        produced: dict[HKey, list[Any]] = {}
        if values:
            self._run_mapper(src, values, produced)
        old_outs = self.emitted.get(src, _NOTHING)
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
        if rid is not None and not values and rid not in self.log.reads:
            self.ids.release(src)
            if tick is not None:
                tick.journal.append((self.ids.restore, (src, rid)))

    def _run_mapper(self, src: HKey, values: list[Any], produced: dict[HKey, list[Any]]) -> None:
        mapper = self.mapper
        token = current_reader.set((self, src))
        try:
            result: Any = mapper.map_entry(unkey(src), Values(values))
            if isinstance(result, str | bytes | Mapping):
                raise TypeError(f"map_entry must return (key, value) pairs, not {result!r}")
            for pair in result:
                # A 2-character string would unpack silently: insist on a real pair.
                if type(pair) is not tuple and type(pair) is not list:
                    raise TypeError(f"map_entry must produce (key, value) pairs, got {pair!r}")
                out, value = pair
                hout = hkey(out)
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
        self.log.clear_all()
