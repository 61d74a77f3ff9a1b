"""Subscription: one connected SSE reader's bounded, coalescing mailbox."""

from __future__ import annotations

from collections.abc import Sequence

from broker.http.chunks import ChunkSource
from broker.http.sse import HEARTBEAT, encode_event
from broker.serving.streams.changes import ChangeMerger
from broker.types import Entry


class Subscription(ChunkSource):
    """Holds what a reader has not been sent yet, within fixed bounds.

    Up to `max_pending` updates wait as the bytes the hub encoded once for every subscriber of
    the instance. A reader further behind gets its backlog merged into one coalesced update (the
    latest values of each changed key), so memory stays bounded by the resource's size whatever
    the write rate. More than `max_lag` ticks behind, `push` reports overflow and the hub closes
    the subscription: the reader resumes from its Last-Event-ID on reconnect.
    """

    __slots__ = (
        "_beat",
        "_first",
        "_lag",
        "_last",
        "_max_lag",
        "_max_pending",
        "_merged",
        "_merged_version",
        "_queue",
        "_quiet",
        "_run",
        "close_reason",
        "instance_id",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: str,
        instance_id: int,
        first: bytes,
        *,
        run: str,
        max_pending: int,
        max_lag: int,
    ) -> None:
        self.stream_id = stream_id
        self.instance_id = instance_id
        self.close_reason: str | None = None
        self._run = run
        self._max_pending = max_pending
        self._max_lag = max_lag
        self._first: bytes | None = first
        self._last: bytes | None = None
        # None until an update has to wait (most readers take each at once): an idle reader
        # holds no queue.
        self._queue: list[tuple[Sequence[Entry], bytes]] | None = None
        self._merged: ChangeMerger | None = None
        self._merged_version = 0
        self._lag = 0
        super().__init__()
        # Heartbeats: `heartbeat()` is called on a fixed beat by the hub; a reader that took
        # nothing since the previous beat gets one. No timer per reader or per wait.
        self._quiet = False
        self._beat = False

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    finished = closed  # ChunkSource's name for it

    @property
    def lag(self) -> int:
        """Ticks pushed but not yet taken by the reader."""
        return self._lag

    @property
    def coalescing(self) -> bool:
        return self._merged is not None

    def push(self, version: int, entries: Sequence[Entry], data: bytes) -> bool:
        """Queue one tick's update (`data` is its shared encoding); False on overflow."""
        if self.close_reason is not None:
            return True
        self._lag += 1
        if self._lag > self._max_lag:
            return False
        merged, queue = self._merged, self._queue
        if merged is None and queue is not None and len(queue) >= self._max_pending:
            # The queued events are shared bytes; only this slow reader pays for re-encoding.
            merged = self._merged = ChangeMerger()
            for queued, _ in queue:
                merged.add(queued)
            self._queue = queue = None
        if merged is None:
            if queue is None:
                self._queue = [(entries, data)]
            else:
                queue.append((entries, data))
        else:
            merged.add(entries)
            self._merged_version = version
        self._wake()
        return True

    def restart(self, first: bytes, run: str) -> None:
        """Replace everything pending with `first` (a fresh init of run `run`): the hub began a
        new run, and nothing queued from the old one may follow the reader there."""
        if self.close_reason is not None:
            return
        self._run = run
        self._first = first
        self._queue = None
        self._merged = None
        self._lag = 0
        self._wake()

    def close(self, reason: str, last: bytes | None = None) -> None:
        """End the subscription: what is pending is dropped; `last` (an error event, say) is
        the one chunk still sent, then the reader's `next_chunk` returns None."""
        if self.close_reason is None:
            self.close_reason = reason
            self._last = last
            self._wake()

    def heartbeat(self) -> None:
        """Queue a heartbeat if nothing was taken since the previous call."""
        if self._quiet and self.close_reason is None:
            self._beat = True
            self._wake()
        self._quiet = True

    def take(self) -> bytes | None:
        """The next chunk to send, or None when nothing is waiting (or closed)."""
        if self.close_reason is not None:
            last, self._last = self._last, None
            return last
        chunk = self._take_data()
        if chunk is not None:
            # Data is as good as a heartbeat: a pending beat is dropped.
            self._quiet = self._beat = False
            return chunk
        if self._beat:
            self._beat = False
            return HEARTBEAT
        return None

    def _take_data(self) -> bytes | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        queue = self._queue
        if queue:
            self._lag -= 1
            # At most max_pending items: popping the head of a short list is cheap.
            return queue.pop(0)[1]
        merged = self._merged
        if merged is not None:
            self._merged = None
            self._lag = 0
            return encode_event("update", self._run, self._merged_version, merged.entries())
        return None
