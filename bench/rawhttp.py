"""A minimal keep-alive HTTP/1.1 client on asyncio streams, so client overhead does not
dominate sub-millisecond latency measurements."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    body: bytes


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}",
            f"Content-Length: {len(body)}",
            "Content-Type: application/json",
        ]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def response(self) -> Response:
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            body = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                body += await self.reader.readexactly(size)
                await self.reader.readline()
            return Response(status, body)
        return Response(status, await self.reader.readexactly(length) if length else b"")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        self.send(method, path, body, headers)
        return await self.response()

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class SseReader:
    """Reads events from an open SSE response on a raw connection.

    Undoes chunked transfer encoding when the server uses it: Skip's server (Express) writes an
    event's `event:`, `id:` and `data:` lines as separate chunks, so chunk framing must not be
    mistaken for the blank line that ends an event."""

    def __init__(self, conn: RawConnection, chunked: bool = False) -> None:
        self.conn = conn
        self.chunked = chunked
        self._buffer = bytearray()

    @classmethod
    async def open(
        cls, host: str, port: int, path: str, last_event_id: str | None = None
    ) -> SseReader:
        conn = await RawConnection.open(host, port)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        conn.send("GET", path, headers=headers)
        status = int((await conn.reader.readline()).split()[1])
        if status != 200:
            raise RuntimeError(f"stream answered {status}")
        chunked = False
        while (line := await conn.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        return cls(conn, chunked)

    async def _fill(self) -> None:
        reader = self.conn.reader
        if not self.chunked:
            data = await reader.read(65536)
        else:
            size_line = await reader.readline()
            if not size_line:
                data = b""
            else:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                data = await reader.readexactly(size) if size else b""
                await reader.readline()
        if not data:
            raise ConnectionError("stream closed")
        self._buffer += data

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            await self._fill()
        line = bytes(self._buffer[:end]).rstrip(b"\r")
        del self._buffer[: end + 1]
        return line

    async def event(self) -> tuple[str, str, bytes]:
        """(event, id, data) of the next event."""
        kind, ident, data = "", "", b""
        while True:
            line = await self._line()
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif line.startswith(b"id:"):
                ident = line[3:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].strip()
            elif line == b"" and kind:
                return kind, ident, data
