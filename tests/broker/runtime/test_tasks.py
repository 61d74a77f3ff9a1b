"""Supervisor and stop_all: tasks owned, failures reported at once, cancellation kept."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker.runtime.tasks import Supervisor, stop_all

pytestmark = pytest.mark.timeout(10)


async def _fail() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("boom")


async def test_a_failure_is_reported_when_it_happens(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, BaseException]] = []
    async with Supervisor("node", on_failure=lambda n, e: seen.append((n, e))) as tasks:
        with caplog.at_level(logging.ERROR, logger="skiff.broker"):
            task = tasks.spawn(_fail(), name="loop")
            await asyncio.wait({task})
            await asyncio.sleep(0)
        assert [(n, str(e)) for n, e in seen] == [("loop", "boom")]
        assert "node: task loop failed" in caplog.text
        assert tasks.running == 0


async def test_an_awaited_task_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    async with Supervisor("node", on_failure=lambda n, e: seen.append(n)) as tasks:
        task = tasks.spawn(_fail(), name="office", report=False)
        with pytest.raises(RuntimeError):
            await task
    assert seen == []
    assert "failed" not in caplog.text


async def test_close_cancels_and_waits_for_every_task() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    tasks = Supervisor("node")
    task = tasks.spawn(forever(), name="forever")
    await started.wait()
    await tasks.aclose()
    assert task.cancelled()
    with pytest.raises(RuntimeError):
        tasks.spawn(forever(), name="late")


async def test_stop_all_keeps_the_callers_cancellation() -> None:
    """Stopping a task that is slow to stop must not swallow the caller's own cancel."""
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # slow to stop
            raise

    child = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    async def stopper() -> str:
        await stop_all(child)
        return "finished"

    outer = asyncio.create_task(stopper())
    await asyncio.sleep(0.01)
    outer.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert child.cancelled()


async def test_stop_all_ignores_how_tasks_ended() -> None:
    failed = asyncio.create_task(_fail())
    await asyncio.wait({failed})
    blocked = asyncio.create_task(asyncio.Event().wait())
    await stop_all(failed, blocked)
    assert blocked.cancelled()
