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
    """Reads events from an open SSE response on a raw connection."""

    def __init__(self, conn: RawConnection) -> None:
        self.conn = conn

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
        while (await conn.reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(conn)

    async def event(self) -> tuple[str, str, bytes]:
        """(event, id, data) of the next event; chunked framing lines are skipped."""
        kind, ident, data = "", "", b""
        reader = self.conn.reader
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("stream closed")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif line.startswith(b"id:"):
                ident = line[3:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].strip()
            elif line == b"" and kind:
                return kind, ident, data
