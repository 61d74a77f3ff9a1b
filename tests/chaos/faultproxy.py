"""A fault-injecting TCP proxy (asyncio): one listening port in front of one upstream.

    link = FaultLink(upstream_port=6379)
    await link.start()              # link.port now relays to the upstream
    link.delay(0.2)                 # add 200 ms to every chunk, both directions
    link.drop(0.3)                  # each new connection is reset with probability 0.3
    link.partition()                # reset every connection, refuse (reset) new ones
    link.partition("127.0.0.2")     # the same, for clients connecting from that address only
    link.heal()                     # back to a clean relay
    await link.close()

A partition resets connections rather than silently swallowing bytes: a TCP peer that vanishes
without a reset is what `delay` with a large value models.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket


class FaultLink:
    def __init__(self, upstream_port: int, *, host: str = "127.0.0.1", seed: int = 0) -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.port = 0
        self.latency = 0.0
        self.drop_rate = 0.0
        self.partitioned = False
        #: Client addresses cut off (a partition of one side only).
        self.cut_sources: set[str] = set()
        self.rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        #: Live relayed connections (client side, upstream side) -> the client's address.
        self._conns: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- faults ---------------------------------------------------------------------------------
    def delay(self, seconds: float) -> None:
        self.latency = seconds

    def drop(self, rate: float) -> None:
        """Reset each new connection with probability `rate`, and the live ones now with it."""
        self.drop_rate = rate
        for pair in list(self._conns):
            if self.rng.random() < rate:
                self._reset(pair)

    def partition(self, source: str | None = None) -> None:
        """Cut every client off, or only those connecting from address `source`."""
        if source is None:
            self.partitioned = True
        else:
            self.cut_sources.add(source)
        for pair, client in list(self._conns.items()):
            if source is None or client == source:
                self._reset(pair)

    def heal(self) -> None:
        self.latency = 0.0
        self.drop_rate = 0.0
        self.partitioned = False
        self.cut_sources.clear()

    @property
    def connections(self) -> int:
        return len(self._conns)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._conns):
            self._reset(pair)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- relaying -------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = writer.get_extra_info("peername")[0]
        if source in self.cut_sources:
            _abort(writer)
            return
        if self.partitioned or (self.drop_rate and self.rng.random() < self.drop_rate):
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            _abort(writer)
            return
        pair = (writer, up_writer)
        self._conns[pair] = source
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, pair)),
            asyncio.create_task(self._pump(up_reader, writer, pair)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        except asyncio.CancelledError:
            # The server's handler task: ending it quietly is the point of close().
            for pump in pumps:
                pump.cancel()
        finally:
            self._tasks.difference_update(pumps)
            self._conns.pop(pair, None)
            for w in pair:
                w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                if pair not in self._conns:
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._reset(pair)

    def _reset(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self._conns.pop(pair, None)
        for w in pair:
            _abort(w)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a broken network path would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()
