"""Sending an ASGI message with a time bound that costs nothing when the send does not wait.

uvicorn's `send` writes to the socket and returns without suspending unless the socket's write
buffer is full, which only happens when the client stopped reading. Arming a timeout around
every send (`asyncio.timeout` schedules and cancels a timer each time) was the largest single
cost of a 1,000-subscriber fan-out after the socket writes themselves. So the send is stepped
once by hand: if it completes, that is all; if it suspends, the rest of it is awaited under the
timeout, resumed exactly where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

from starlette.types import Message, Send


async def send_within(send: Send, message: Message, timeout_s: float) -> None:
    """`await send(message)`, raising TimeoutError if it has to wait more than `timeout_s`."""
    step = send(message)
    if not isinstance(step, Coroutine):
        # Not a coroutine (a test double returning some other awaitable): the plain way.
        async with asyncio.timeout(timeout_s):
            await step
        return
    try:
        waiting_on = step.send(None)
    except StopIteration:
        return
    async with asyncio.timeout(timeout_s):
        await _Resumed(step, waiting_on)


class _Resumed(Awaitable[None]):
    """The remainder of a coroutine that was stepped once and yielded `waiting_on` (the
    future it waits for): what `await` would have done from there, including cancellation."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, yielded = self._coro, self._waiting_on
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # cancellation (or anything) thrown in by the task
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
                continue
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return
