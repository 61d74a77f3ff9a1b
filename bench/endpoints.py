"""Where a benchmark client talks to: a skiff node or proxy (one port for everything), or Skip's
server (control routes on one port, the SSE route on another, as docs/protocol.md describes).

Every benchmark that has a Skip counterpart drives an `Endpoint`, so skiff and Skip are measured
with the same client code over the same protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil

from bench.rawhttp import RawConnection, SseReader


@dataclass(frozen=True)
class Endpoint:
    system: str  # "skiff" or "skip"
    control_port: int
    stream_port: int
    #: processes whose CPU and memory the benchmark reports, by role ("node", "leader", ...).
    pids: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @classmethod
    def single(cls, system: str, port: int, pids: dict[str, int] | None = None) -> Endpoint:
        return cls(system, port, port, pids or {})

    async def control(self) -> RawConnection:
        return await RawConnection.open(self.host, self.control_port)

    async def create_stream(
        self, resource: str, params: Any, conn: RawConnection | None = None
    ) -> str:
        own = conn is None
        c = conn or await self.control()
        try:
            resp = await c.request("POST", f"/v1/streams/{resource}", orjson.dumps(params))
        finally:
            if own:
                await c.close()
        if resp.status != 201:
            raise RuntimeError(f"{self.system}: POST /v1/streams/{resource} -> {resp}")
        return resp.body.decode()

    def stream_path(self, stream_id: str) -> str:
        return f"/v1/streams/{stream_id}"

    async def open_stream(self, stream_id: str) -> SseReader:
        return await SseReader.open(self.host, self.stream_port, self.stream_path(stream_id))

    async def subscribe(self, resource: str, params: Any) -> SseReader:
        """Create a stream, open it, and read its init."""
        sse = await self.open_stream(await self.create_stream(resource, params))
        kind, _, _ = await sse.event()
        if kind != "init":
            raise RuntimeError(f"{self.system}: first event was {kind!r}, not init")
        return sse


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class CpuMeter:
    """CPU seconds each process spent between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        return self.used
