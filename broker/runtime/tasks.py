"""Owning background tasks: a Supervisor per node, and stopping tasks without losing the
caller's own cancellation.

Every task a node starts in the background (heartbeat, replication loop, lease keeper,
snapshots, drain, membership poll, keepalive) is spawned by a Supervisor, which keeps it
referenced (asyncio holds tasks weakly), reports its failure the moment it happens (logged with
the traceback, then the owner's `on_failure`, which decides what the node does about it), and
cancels and awaits whatever is left when the node stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

logger = logging.getLogger("skiff.broker")

T = TypeVar("T")
OnFailure = Callable[[str, BaseException], None]


async def stop_all(*tasks: asyncio.Task[Any]) -> None:
    """Cancel `tasks` and wait until each has finished, whatever it ended with (its supervisor
    reported a failure when it happened).

    The caller's own cancellation is never swallowed (as `suppress(CancelledError)` around an
    await would): if the caller is cancelled while it waits, CancelledError propagates."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


class Supervisor:
    """The owner of a node's background tasks (`async with` closes it)."""

    def __init__(self, name: str, on_failure: OnFailure | None = None) -> None:
        self.name = name
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(
        self, coro: Coroutine[Any, Any, T], *, name: str, report: bool = True
    ) -> asyncio.Task[T]:
        """Run `coro` as a task of this supervisor.

        `report=False` for a task whose outcome its spawner awaits and handles (a failure is
        then the spawner's to deal with, not an unexpected one to log)."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name}: supervisor closed, cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished if report else self._tasks.discard)
        return task

    @property
    def running(self) -> int:
        return len(self._tasks)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        logger.error("%s: task %s failed", self.name, task.get_name(), exc_info=error)
        if self._on_failure is not None:
            self._on_failure(task.get_name(), error)

    async def aclose(self) -> None:
        """Cancel every task and wait for them all (errors were reported as they happened)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            except Exception:
                pass

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
