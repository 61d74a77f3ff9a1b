"""The state of one tick in progress: an undo journal and the queue of nodes with work."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol


class Work(Protocol):
    """A node as the tick schedules it (graph/nodes/node.py)."""

    id: int
    scheduled: bool

    def __lt__(self, other: Any) -> bool: ...

    def process(self) -> None: ...

    def reset_pending(self) -> None: ...


class Touched(Protocol):
    """A published node whose changes this tick records (graph/nodes/node.py)."""

    id: int
    tick_old: dict[Any, list[Any] | None] | None

    def tick_changes(self) -> list[tuple[Any, list[Any]]]: ...


class Tick:
    """A write batch being propagated. Nodes run in creation order, which is a topological
    order: a node can only be built from collections that existed before it."""

    __slots__ = ("_queue", "journal", "touched")

    def __init__(self) -> None:
        self.journal: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._queue: list[tuple[int, Work]] = []
        self.touched: dict[int, Touched] = {}

    def schedule(self, node: Work) -> None:
        if not node.scheduled:
            node.scheduled = True
            heapq.heappush(self._queue, (node.id, node))

    def run(self) -> None:
        queue = self._queue
        while queue:
            _, node = heapq.heappop(queue)
            node.scheduled = False
            node.process()

    def undo(self) -> None:
        """Replay the journal backwards: every structure returns to its pre-tick state."""
        journal = self.journal
        while journal:
            fn, args = journal.pop()
            fn(*args)

    def abandon(self) -> None:
        """Forget queued work (after an error: the rollback restores the data itself)."""
        for _, node in self._queue:
            node.scheduled = False
            node.reset_pending()
        self._queue.clear()
