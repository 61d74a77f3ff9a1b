"""The background tasks of one adapter: one per live subscription, by instance name, plus
short cleanup tasks (a best-effort DELETE), all owned by one Supervisor.

An adapter can be shut down and used again (a service object outlives the nodes that run it):
the supervisor is made on first use and dropped by `aclose`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from broker.runtime.tasks import Supervisor


class SubscriptionTasks:
    def __init__(self, name: str) -> None:
        self._name = name
        self._supervisor: Supervisor | None = None
        self._by_instance: dict[str, asyncio.Task[None]] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    def start(self, instance: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as `instance`'s task (a previous task of that name is cancelled)."""
        self.stop(instance)
        task = self._tasks().spawn(coro, name=f"{self._name} {instance}")
        self._by_instance[instance] = task
        task.add_done_callback(lambda done: self._forget(instance, done))
        return task

    def stop(self, instance: str) -> bool:
        """Cancel `instance`'s task; False when there was none. Once this returns the task runs
        no further code of its own but its `finally` blocks (it is suspended in an await)."""
        task = self._by_instance.pop(instance, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cleanup(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a short task that nobody waits for now; `aclose` waits for it (a little)."""
        task = self._tasks().spawn(coro, name=f"{self._name} {name}")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def __contains__(self, instance: str) -> bool:
        return instance in self._by_instance

    @property
    def instances(self) -> tuple[str, ...]:
        return tuple(self._by_instance)

    async def aclose(self, cleanup_timeout_s: float) -> None:
        """Cancel every subscription, give cleanups up to `cleanup_timeout_s`, cancel the rest."""
        for instance in self.instances:
            self.stop(instance)
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=cleanup_timeout_s)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await supervisor.aclose()

    def _tasks(self) -> Supervisor:
        if self._supervisor is None:
            self._supervisor = Supervisor(self._name)
        return self._supervisor

    def _forget(self, instance: str, task: asyncio.Task[None]) -> None:
        if self._by_instance.get(instance) is task:
            del self._by_instance[instance]
