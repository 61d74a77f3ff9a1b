"""Draining a node before it exits (SIGTERM, or `POST /v1/admin/drain`).

In order:
1. intake stops: new streams and new readers get 503 and /healthz turns 503 ("draining"), so
   the proxy stops sending streams here and re-homes the reconnects that still arrive;
2. the connected SSE readers are ended one by one, spread evenly over `window_s` (10 s by
   default): their clients reconnect through the proxy, which re-homes them to other followers
   a few at a time instead of all at once;
3. `finished` is set; the server then shuts down in its usual order, the node's heartbeat
   deregisters it from Redis on the way out, and the process exits 0.

With no reader connected the drain finishes at once. A second SIGTERM (or SIGINT) during the
window stops the node without waiting for the rest of it.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.http.auth import ControlToken
from broker.runtime.tasks import Supervisor, stop_all
from broker.serving.hub import Hub

logger = logging.getLogger("skiff.broker")


def close_offsets(count: int, window_s: float) -> list[float]:
    """When (seconds after the start) each of `count` readers is ended: evenly spread, the
    first at once, the last one slot before the end of the window."""
    if count <= 0:
        return []
    return [window_s * i / count for i in range(count)]


class Drain:
    def __init__(
        self,
        hub: Hub,
        window_s: float,
        *,
        control_token: str | None = None,
        tasks: Supervisor | None = None,
    ) -> None:
        self._hub = hub
        self.window_s = window_s
        self._token = ControlToken(control_token)
        self._loop = asyncio.get_running_loop()
        self._tasks = tasks or Supervisor("drain")
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    @property
    def started(self) -> bool:
        return self._task is not None

    def start(self) -> bool:
        """Begin draining (idempotent); False when it had already begun."""
        if self._task is not None:
            return False
        self._hub.stop_intake()
        self._task = self._tasks.spawn(self._run(), name="drain")
        return True

    def start_threadsafe(self) -> None:
        """`start()` from a signal handler or another thread."""
        self._loop.call_soon_threadsafe(self.start)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            await stop_all(task)

    def route(self) -> Route:
        """`POST /v1/admin/drain` (control token required when one is configured): 202."""

        async def drain(request: Request) -> Response:
            self._token.require(request.headers)
            begun = self.start()
            return JSONResponse(
                {"draining": True, "already": not begun, "window_s": self.window_s},
                status_code=202,
            )

        return Route("/v1/admin/drain", drain, methods=["POST"])

    async def _run(self) -> None:
        try:
            await self._end_streams()
        finally:
            # Even a drain that failed lets the node shut down (the failure is logged).
            self.finished.set()

    async def _end_streams(self) -> None:
        stream_ids = self._hub.connected_stream_ids()
        logger.info("draining: ending %d stream(s) over %g s", len(stream_ids), self.window_s)
        started = self._loop.time()
        for stream_id, offset in zip(
            stream_ids, close_offsets(len(stream_ids), self.window_s), strict=True
        ):
            delay = started + offset - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._hub.disconnect(stream_id, "draining")
        logger.info("drained")
