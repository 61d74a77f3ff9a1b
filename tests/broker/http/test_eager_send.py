"""send_within: a send that does not wait costs no timer; one that waits is resumed exactly
where it stopped, bounded by the timeout, and cancellable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.http.eager_send import send_within

pytestmark = pytest.mark.timeout(10)

MESSAGE = {"type": "http.response.body", "body": b"x", "more_body": True}


async def test_a_send_that_does_not_wait_completes_in_place() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop = asyncio.get_running_loop()
    timers = len(loop._scheduled)  # type: ignore[attr-defined]
    await send_within(send, MESSAGE, 5.0)
    assert sent == [MESSAGE]
    assert len(loop._scheduled) == timers  # type: ignore[attr-defined]


async def test_a_send_that_waits_is_resumed_with_what_it_waited_for() -> None:
    writable = asyncio.Event()
    steps: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        steps.append("paused")
        await writable.wait()
        steps.append("drained")
        await asyncio.sleep(0)
        value = await asyncio.get_running_loop().run_in_executor(None, lambda: 42)
        steps.append(f"wrote {value}")

    task = asyncio.create_task(send_within(send, MESSAGE, 5.0))
    await asyncio.sleep(0.05)
    assert steps == ["paused"] and not task.done()
    writable.set()
    await asyncio.wait_for(task, 2)
    assert steps == ["paused", "drained", "wrote 42"]


async def test_a_send_that_waits_too_long_times_out_and_is_ended() -> None:
    ended: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()  # the client never reads again
        finally:
            ended.append("ended")

    with pytest.raises(TimeoutError):
        await send_within(send, MESSAGE, 0.05)
    assert ended == ["ended"]


async def test_cancelling_the_caller_cancels_the_send() -> None:
    ended: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    task = asyncio.create_task(send_within(send, MESSAGE, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cancelled"]


async def test_an_error_from_the_send_propagates() -> None:
    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise OSError("connection reset")

    with pytest.raises(OSError, match="reset"):
        await send_within(send, MESSAGE, 5.0)
