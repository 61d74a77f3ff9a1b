"""The fault-injecting TCP proxy against an echo server: relay, delay, drop, partition, heal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.chaos.faultproxy import FaultLink

pytestmark = pytest.mark.timeout(20)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest_asyncio.fixture
async def link() -> AsyncIterator[FaultLink]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    link = FaultLink(server.sockets[0].getsockname()[1], seed=1)
    await link.start()
    try:
        yield link
    finally:
        await link.close()
        server.close()


async def roundtrip(link: FaultLink, payload: bytes = b"ping", source: str | None = None) -> bytes:
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection("127.0.0.1", link.port, local_addr=local)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1024), 3)
    finally:
        writer.close()


async def test_relays_and_delays(link: FaultLink) -> None:
    assert await roundtrip(link) == b"ping"
    link.delay(0.2)
    started = time.monotonic()
    assert await roundtrip(link) == b"ping"
    assert time.monotonic() - started >= 0.4  # both directions
    link.heal()
    assert await roundtrip(link) == b"ping"


async def test_partition_resets_live_and_new_connections_until_healed(link: FaultLink) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
    writer.write(b"a")
    assert await reader.read(1) == b"a"
    link.partition()
    try:  # the live connection is cut: EOF or reset
        assert await asyncio.wait_for(reader.read(1), 3) == b""
    except ConnectionResetError:
        pass
    writer.close()
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError, OSError)):
        data = await roundtrip(link)
        if not data:
            raise ConnectionResetError("closed")
    link.heal()
    assert await roundtrip(link) == b"ping"


async def test_drop_resets_some_connections(link: FaultLink) -> None:
    link.drop(1.0)
    with pytest.raises((ConnectionError, OSError)):
        data = await roundtrip(link)
        if not data:
            raise ConnectionResetError("closed")
    link.heal()
    assert await roundtrip(link) == b"ping"


async def test_a_partition_of_one_source_address_leaves_the_others(link: FaultLink) -> None:
    near = await asyncio.open_connection("127.0.0.1", link.port)
    far = await asyncio.open_connection("127.0.0.1", link.port, local_addr=("127.0.0.2", 0))
    for reader, writer in (near, far):
        writer.write(b"a")
        assert await reader.read(1) == b"a"
    link.partition("127.0.0.2")
    try:  # the far side's live connection is cut
        assert await asyncio.wait_for(far[0].read(1), 3) == b""
    except ConnectionResetError:
        pass
    with pytest.raises((ConnectionError, OSError)):
        if not await roundtrip(link, source="127.0.0.2"):
            raise ConnectionResetError("closed")
    # The near side's live connection and new ones keep going.
    near[1].write(b"b")
    assert await near[0].read(1) == b"b"
    assert await roundtrip(link) == b"ping"
    link.heal()
    assert await roundtrip(link, source="127.0.0.2") == b"ping"
    for _, writer in (near, far):
        writer.close()
