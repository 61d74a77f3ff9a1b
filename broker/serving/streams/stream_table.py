"""StreamTable: a hub's stream ids — the instance each one names, its connected reader (at most
one) and the subject it belongs to. The instance keeps the reverse index (InstanceState.streams),
which this table keeps in step."""

from __future__ import annotations

from dataclasses import dataclass

from broker.serving.streams.instance_state import InstanceState
from broker.serving.streams.subscription import Subscription
from graph import ResourceInstance


@dataclass(eq=False, slots=True)
class Stream:
    instance: InstanceState
    reader: Subscription | None = None
    #: The subject of the token that created it (None: anonymous, or auth off).
    owner: str | None = None


class StreamTable:
    def __init__(self) -> None:
        self._by_id: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, stream_id: str) -> bool:
        return stream_id in self._by_id

    def get(self, stream_id: str) -> Stream | None:
        return self._by_id.get(stream_id)

    def add(self, stream_id: str, state: InstanceState, owner: str | None) -> None:
        state.streams.add(stream_id)
        self._by_id[stream_id] = Stream(instance=state, owner=owner)

    def remove(self, stream_id: str) -> Stream | None:
        stream = self._by_id.pop(stream_id, None)
        if stream is not None:
            stream.instance.streams.discard(stream_id)
        return stream

    def forget(self, state: InstanceState) -> None:
        """Remove every stream id of `state` (its instance is going)."""
        for stream_id in state.streams:
            self._by_id.pop(stream_id, None)
        state.streams.clear()

    def owner_of(self, stream_id: str) -> str | None:
        stream = self._by_id.get(stream_id)
        return None if stream is None else stream.owner

    def instance_of(self, stream_id: str) -> ResourceInstance | None:
        stream = self._by_id.get(stream_id)
        return None if stream is None else stream.instance.handle

    def connected(self) -> list[str]:
        return [sid for sid, stream in self._by_id.items() if stream.reader is not None]

    def detach(self, reader: Subscription) -> None:
        """`reader` is no longer its stream's connected reader (if it still was)."""
        stream = self._by_id.get(reader.stream_id)
        if stream is not None and stream.reader is reader:
            stream.reader = None
