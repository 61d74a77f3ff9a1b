"""Subscription: ordered delivery, shared bytes, coalescing past the pending bound, overflow."""

from __future__ import annotations

import asyncio

import pytest

from broker import Subscription
from broker.http.sse import HEARTBEAT, encode_event

pytestmark = pytest.mark.timeout(10)

FIRST = b"event: init\nid: r/0\ndata: []\n\n"


def make(max_pending: int = 3, max_lag: int = 10) -> Subscription:
    return Subscription("s", 1, FIRST, run="r", max_pending=max_pending, max_lag=max_lag)


def push(sub: Subscription, version: int, entries: list[tuple[object, list[object]]]) -> bytes:
    data = encode_event("update", "r", version, entries)
    assert sub.push(version, entries, data)
    return data


async def test_first_event_then_updates_in_order_as_the_shared_bytes() -> None:
    sub = make()
    a = push(sub, 1, [("a", [1])])
    b = push(sub, 2, [("b", [1])])
    assert sub.take() is FIRST
    assert sub.take() is a
    assert sub.take() is b
    assert sub.take() is None
    assert sub.lag == 0


async def test_backlog_past_max_pending_is_coalesced() -> None:
    sub = make(max_pending=2)
    assert sub.take() is FIRST
    push(sub, 1, [("a", [1]), ("b", [1])])
    push(sub, 2, [("a", [2])])
    assert not sub.coalescing
    push(sub, 3, [("c", [3]), ("b", [])])
    assert sub.coalescing
    push(sub, 4, [("a", [4])])
    assert sub.lag == 4
    assert sub.take() == encode_event("update", "r", 4, [("a", [4]), ("b", []), ("c", [3])])
    assert sub.take() is None
    assert sub.lag == 0
    assert not sub.coalescing
    # Back to sharing bytes once caught up.
    e = push(sub, 5, [("a", [5])])
    assert sub.take() is e


async def test_overflow_past_max_lag() -> None:
    sub = make(max_pending=1, max_lag=3)
    for version in (1, 2, 3):
        push(sub, version, [("a", [version])])
    assert not sub.push(4, [("a", [4])], b"x")


async def test_taking_keeps_a_slow_reader_within_bounds() -> None:
    sub = make(max_pending=1, max_lag=2)
    sub.take()
    for version in range(1, 50):
        push(sub, version, [("a", [version])])
        if version % 2 == 0:
            assert sub.take() is not None


async def test_close_ends_delivery() -> None:
    sub = make()
    push(sub, 1, [("a", [1])])
    sub.close("deleted")
    assert sub.closed
    assert sub.close_reason == "deleted"
    assert sub.take() is None
    assert await sub.next_chunk() is None
    # Pushing to a closed subscription is a no-op, not an overflow.
    assert sub.push(2, [], b"x")
    sub.close("again")
    assert sub.close_reason == "deleted"


async def test_next_chunk_waits_for_a_push() -> None:
    sub = make()
    assert await sub.next_chunk() is FIRST
    waiter = asyncio.create_task(sub.next_chunk())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    data = push(sub, 1, [("a", [1])])
    assert await waiter is data


async def test_a_reader_quiet_for_a_whole_beat_gets_a_heartbeat() -> None:
    sub = make()
    assert await sub.next_chunk() is FIRST
    sub.heartbeat()  # the first chunk went out during this beat: no heartbeat yet
    assert sub.take() is None
    sub.heartbeat()  # quiet for a whole beat
    assert await sub.next_chunk() == HEARTBEAT
    data = push(sub, 1, [("a", [1])])
    sub.heartbeat()  # an update is pending: it goes out instead of a heartbeat
    assert sub.take() is data
    assert sub.take() is None
    sub.heartbeat()
    assert sub.take() is None  # the update was sent during the last beat
    sub.heartbeat()
    waiter = asyncio.create_task(sub.next_chunk())
    assert await waiter == HEARTBEAT


async def test_a_heartbeat_wakes_a_waiting_reader() -> None:
    sub = make()
    assert await sub.next_chunk() is FIRST
    sub.heartbeat()
    waiter = asyncio.create_task(sub.next_chunk())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    sub.heartbeat()
    assert await asyncio.wait_for(waiter, 1) == HEARTBEAT


async def test_close_wakes_a_waiting_reader() -> None:
    sub = make()
    await sub.next_chunk()
    waiter = asyncio.create_task(sub.next_chunk())
    await asyncio.sleep(0.01)
    sub.close("shutdown")
    assert await waiter is None
