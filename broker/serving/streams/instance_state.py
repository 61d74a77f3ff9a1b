"""One resource instance as the hub serves it: its stream ids, connected readers, resume history
and the encoded init they share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from broker.http.sse import encode_event, parse_event_id
from broker.serving.streams.changes import merge_changes
from broker.serving.streams.subscription import Subscription
from broker.types import Entry
from graph import Engine, GraphError, ResourceInstance


@dataclass(eq=False, slots=True)
class InstanceState:
    handle: ResourceInstance
    # Changes are known for every version after `floor`: a resume from v >= floor is exact.
    floor: int
    #: How many versions of changes are kept for resumes (ServeConfig.history_versions).
    keep: int
    # None until the first change: an instance nobody writes to holds no history.
    history: list[tuple[int, list[Entry]]] | None = None
    streams: set[str] = field(default_factory=set)
    readers: set[Subscription] = field(default_factory=set)
    init_cache: tuple[int, bytes] | None = None
    idle_timer: asyncio.TimerHandle | None = None

    @classmethod
    def new(cls, handle: ResourceInstance, version: int, history_versions: int) -> InstanceState:
        return cls(handle=handle, floor=version, keep=history_versions)

    def record(self, version: int, entries: list[Entry], *, local: bool = False) -> None:
        """Keep one tick's changes for resumes (the oldest fall out of the window).

        A local tick (an external resource of this node's instance, graph/external.py) changes
        the content without moving the version: the init cached for `version` is stale, and a
        reader resuming from `version` may or may not have seen this change, so it gets an
        init (the floor moves past `version`)."""
        if local:
            self.init_cache = None
        if self.keep == 0:
            self.floor = version + 1 if local else version
            return
        history = self.history
        if history is None:
            history = self.history = []
        elif len(history) == self.keep:
            self.floor = max(self.floor, history[0][0])
            del history[0]  # a few hundred pointers moved, once per tick of this instance
        history.append((version, entries))
        if local:
            self.floor = max(self.floor, version + 1)

    def resume_event(self, run: str, version: int, since: int) -> bytes | None:
        """One update with the net change from `since` to `version`, if history covers it."""
        if not self.floor <= since <= version:
            return None
        changes = merge_changes(e for v, e in self.history or () if v > since)
        return encode_event("update", run, version, changes)

    def first_event(self, run: str, version: int, last_event_id: str | None) -> bytes:
        """A new reader's first event: the update since `last_event_id` when it names a version
        of this run that the history covers, else an init."""
        since = parse_event_id(last_event_id) if last_event_id is not None else None
        if since is not None and since[0] == run:
            resumed = self.resume_event(run, version, since[1])
            if resumed is not None:
                return resumed
        return self.init_event(run, version)

    def init_event(self, run: str, version: int) -> bytes:
        cached = self.init_cache
        if cached is None or cached[0] != version:
            # Readers connecting at the same version share one encoded init.
            cached = (version, encode_event("init", run, version, self.handle.entries()))
            self.init_cache = cached
        return cached[1]

    def rebind(self, handle: ResourceInstance) -> None:
        """Serve the same (resource, params) from `handle`, an instance of another engine."""
        self.handle = handle
        for reader in self.readers:
            reader.instance_id = handle.id

    def close_readers(self, reason: str, last: bytes | None = None) -> None:
        # A copy: closing a reader may detach it from this set at once.
        for reader in list(self.readers):
            reader.close(reason, last)
        self.readers.clear()

    def arm_idle(self, delay_s: float, expire: Callable[[InstanceState], None]) -> None:
        """Call `expire(self)` after `delay_s` unless disarmed (or re-armed) first."""
        self.disarm_idle()
        self.idle_timer = asyncio.get_running_loop().call_later(delay_s, self._expire, expire)

    def _expire(self, expire: Callable[[InstanceState], None]) -> None:
        self.idle_timer = None
        expire(self)

    def disarm_idle(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def restart(self, run: str, version: int) -> None:
        """Forget the history of the previous run; every connected reader gets a fresh init."""
        self.history = None
        self.floor = version
        self.init_cache = None
        if self.readers:
            init = self.init_event(run, version)
            for reader in self.readers:
                reader.restart(init, run)


def rebind_all(
    states: Iterable[InstanceState], engine: Engine
) -> tuple[dict[int, InstanceState], list[InstanceState]]:
    """Recreate each instance in `engine` from its resource, params and claims: those it builds
    (by their new id), and those it rejects — their readers closed, their idle clocks stopped."""
    kept: dict[int, InstanceState] = {}
    gone: list[InstanceState] = []
    for state in states:
        handle = state.handle
        try:
            state.rebind(engine.instantiate(handle.resource, handle.params, handle.claims))
        except GraphError:
            state.close_readers("reset")
            state.disarm_idle()
            gone.append(state)
            continue
        kept[state.handle.id] = state
    return kept, gone
