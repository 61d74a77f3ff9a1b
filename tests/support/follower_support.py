"""Steps shared by the MirrorSync tests: driving a sync, watching what its hub publishes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from broker import Hub
from broker.follower.sync import MirrorSync
from graph import TickResult
from tests.support.helpers import decode_chunk
from tests.support.scripted_leader import ScriptedLeader, leader_state, mirror_state


async def step_until(sync: MirrorSync, done: Callable[[], bool], steps: int = 200) -> None:
    for _ in range(steps):
        if done():
            return
        await sync.step()
    raise AssertionError(f"not reached: state {sync.state} ({sync.reason}), at {sync.applied}")


async def caught_up(sync: MirrorSync, leader: ScriptedLeader) -> None:
    await step_until(sync, lambda: sync.state == "tailing" and sync.applied == leader.version)
    assert sync.epoch == leader.epoch
    assert sync.hub is not None
    assert mirror_state(sync.hub.engine) == leader_state(leader)


def record_versions(hub: Hub) -> list[int]:
    """Every version the hub publishes, in order."""
    seen: list[int] = []
    publish = hub.publish

    def recording(result: TickResult, *, local: bool = False) -> None:
        seen.append(result.version)
        publish(result, local=local)

    hub.publish = recording  # type: ignore[method-assign]
    return seen


def reader_of(hub: Hub, resource: str = "top", params: Any = None) -> Any:
    stream = hub.create_stream(resource, params if params is not None else {"limit": 10})
    return hub.subscribe(stream)


def events(reader: Any) -> list[Any]:
    out = []
    while (chunk := reader.take()) is not None:
        out.append(decode_chunk(chunk))
    return out


@contextlib.asynccontextmanager
async def running(sync: MirrorSync) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sync.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(done: Callable[[], bool], within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
