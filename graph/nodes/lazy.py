"""LazyCollection: values computed on demand per key, memoised, invalidated by their reads."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from graph.errors import CycleError, KeyLookupError, NotJsonError, UserCodeError
from graph.keys import HKey, check_json, hkey, unkey
from graph.nodes.tracking import KeyIds, Readable, ReadLog, current_reader

if TYPE_CHECKING:
    from graph.host import Host


class ComputeFn(Protocol):
    """What a lazy collection calls: graph.api.LazyCompute's interface (`context` is the
    graph.context.Context handed to user code)."""

    def compute(self, self_collection: LazyCollection, key: Any, context: Any) -> Iterable[Any]: ...


_MISSING: Any = object()


class LazyCollection(Readable):
    """A collection whose values at a key are computed when first read.

    A computation may read eager collections and this collection itself at other keys (a
    spreadsheet's cells); it reruns only when something it read changes. Reading a key that is
    being computed further up the same chain is a cycle and raises CycleError.
    """

    __slots__ = ("compute", "computing", "context", "engine", "ids", "log", "memo")

    def __init__(self, engine: Host, compute: ComputeFn, context: Any) -> None:
        self.engine = engine
        self.compute = compute
        self.context = context
        self.memo: dict[HKey, list[Any]] = {}
        self.computing: dict[HKey, None] = {}  # the keys being computed, outermost first
        self.ids = KeyIds()
        self.log = ReadLog(self)
        self._init_readers()
        engine.register_lazy(self)

    @property
    def name(self) -> str:
        return type(self.compute).__name__

    # -- user API ---------------------------------------------------------------------------
    def get_array(self, key: Any) -> list[Any]:
        return list(self._read(hkey(key)))

    def get_unique(self, key: Any, default: Any = _MISSING) -> Any:
        values = self._read(hkey(key))
        if len(values) == 1:
            return values[0]
        if default is not _MISSING:
            return default
        raise KeyLookupError(
            f"lazy collection {self.name} has {len(values)} values at key {key!r}, expected one"
        )

    # -- engine -------------------------------------------------------------------------------
    def _read(self, key: HKey) -> list[Any]:
        self.track(key)
        values = self.memo.get(key)
        if values is None:
            values = self._compute(key)
        return values

    def _compute(self, key: HKey) -> list[Any]:
        if key in self.computing:
            chain = list(self.computing)
            cycle = " -> ".join(repr(unkey(k)) for k in [*chain[chain.index(key) :], key])
            raise CycleError(
                f"lazy collection {self.name} depends on itself at key {unkey(key)!r} "
                f"(cycle: {cycle})"
            )
        tick = self.engine.tick
        if tick is not None:
            # Journaled first: a rollback drops the memo and every edge this computation made.
            tick.journal.append((self._forget, (key,)))
        self.computing[key] = None
        token = current_reader.set((self, key))
        try:
            values = self._run(key)
        except BaseException:
            # A failed computation leaves no memo and no dependency edges behind.
            self._drop_edges(key)
            raise
        finally:
            current_reader.reset(token)
            self.computing.pop(key, None)
        rid = self.ids.ids.get(key)
        if rid is not None:
            self.log.seal(rid)
        self.memo[key] = values
        return values

    def _run(self, key: HKey) -> list[Any]:
        try:
            result = self.compute.compute(self, unkey(key), self.context)
            if isinstance(result, str | bytes | Mapping):
                raise TypeError(f"compute must return a list of values, not {result!r}")
            values = list(result) if result is not None else []
            for value in values:
                check_json(value)
        except UserCodeError:
            raise
        except NotJsonError as err:
            raise UserCodeError(
                f"lazy compute {self.name} produced a non-JSON value for key {unkey(key)!r}: {err}"
            ) from err
        except Exception as err:
            raise UserCodeError(
                f"lazy compute {self.name} failed on key {unkey(key)!r}: {err!r}"
            ) from err
        return values

    def _memo_set(self, key: HKey, values: list[Any]) -> None:
        self.memo[key] = values

    def _forget(self, key: HKey) -> None:
        """Drop the memo at `key` and the edges its computation made."""
        self.memo.pop(key, None)
        self._drop_edges(key)

    def _drop_edges(self, key: HKey) -> None:
        rid = self.ids.ids.get(key)
        if rid is not None:
            # The id stays allocated: an earlier journal entry of this tick may restore edges
            # under it.
            self.log.forget(rid)

    def reader_id(self, key: HKey) -> int:
        return self.ids.id_of(key)

    def record_read(self, rid: int, store: Readable, key: HKey) -> None:
        self.log.record(rid, store, key)

    def invalidate(self, ids: Iterable[int]) -> None:
        for key in self.ids.keys_of(ids):
            self._invalidate_key(key)

    def _invalidate_key(self, key: HKey) -> None:
        values = self.memo.get(key)
        if values is None:
            return
        tick = self.engine.tick
        rid = self.ids.ids.get(key)
        if rid is not None:
            self.log.clear(rid, tick)
        del self.memo[key]
        if tick is not None:
            tick.journal.append((self._memo_set, (key, values)))
        # Whoever read this key must recompute too (their reads reach us again).
        self.notify_readers(key)

    def detach(self) -> None:
        self.log.clear_all()
        self.memo.clear()
