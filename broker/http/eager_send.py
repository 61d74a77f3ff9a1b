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


def start_send(send: Send, message: Message) -> PendingSend | None:
    """Start `send(message)` and run it as far as it goes without waiting: None when it is
    done, else what is left of it (await `finish`). Errors of that first part are raised."""
    step = send(message)
    if not isinstance(step, Coroutine):
        # Not a coroutine (a test double returning some other awaitable): awaited whole.
        return PendingSend(step)
    try:
        waiting_on = step.send(None)
    except StopIteration:
        return None
    return PendingSend(_Resumed(step, waiting_on))


class PendingSend:
    """The rest of a send that had to wait (the client's socket buffer is full)."""

    __slots__ = ("_rest",)

    def __init__(self, rest: Awaitable[Any]) -> None:
        self._rest = rest

    async def finish(self, timeout_s: float) -> None:
        """Await the rest, raising TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            await self._rest


async def send_within(send: Send, message: Message, timeout_s: float) -> None:
    """`await send(message)`, raising TimeoutError if it has to wait more than `timeout_s`."""
    pending = start_send(send, message)
    if pending is not None:
        await pending.finish(timeout_s)


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
