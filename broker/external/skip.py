"""SkipExternalService: a resource of another Skip-protocol service as an external collection
(service chaining; Skip's `SkipExternalService`). The other service may be a skiff node, a
skiff proxy, or Skip's own runtime: both speak docs/protocol.md.

    SkipExternalService("http://orders:8080")                   # one port for everything
    SkipExternalService.direct("orders", 8080, 8081)            # Skip's streaming/control ports

`subscribe` creates a stream of the resource with the params and returns once its `init` has
been delivered; the stream is then followed, reconnected and recreated as
broker/external/remote_stream.py describes, until `unsubscribe` closes it (and deletes the
stream id, best effort).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from broker.errors import ConfigError
from broker.external.errors import ExternalStreamError
from broker.external.remote_stream import RemoteStream, StreamSettings
from broker.external.subscriptions import SubscriptionTasks
from broker.types import Json
from graph.external import ExternalCallbacks, ExternalService

logger = logging.getLogger("skiff.broker")

# How long shutdown lets the best-effort DELETEs of the streams it closes run.
_DELETE_GRACE_S = 1.0


class SkipExternalService(ExternalService):
    """Resources of the Skip-protocol service at `url` (streams are read there) and
    `control_url` (streams are created and deleted there; `url` when None).

    `headers` go with every request (e.g. `Authorization` for a skiff node's control token,
    which deleting a stream needs); `timeout_s` bounds each request and connection attempt,
    `init_timeout_s` how long `subscribe` waits for the first `init`; `idle_timeout_s` (None:
    no limit) how long a silent stream is trusted — a few of the server's heartbeat periods,
    when it sends heartbeats (skiff does, Skip 0.0.15 does not)."""

    def __init__(
        self,
        url: str,
        control_url: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        init_timeout_s: float = 10.0,
        idle_timeout_s: float | None = None,
        max_reconnect_delay_s: float = 2.0,
    ) -> None:
        durations = {
            "timeout_s": timeout_s,
            "init_timeout_s": init_timeout_s,
            "max_reconnect_delay_s": max_reconnect_delay_s,
        }
        if idle_timeout_s is not None:
            durations["idle_timeout_s"] = idle_timeout_s
        for name, value in durations.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        self.settings = StreamSettings(
            url=url.rstrip("/"),
            control_url=(control_url or url).rstrip("/"),
            headers=dict(headers or {}),
            timeout_s=timeout_s,
            idle_timeout_s=idle_timeout_s,
            max_reconnect_delay_s=max_reconnect_delay_s,
        )
        self.init_timeout_s = init_timeout_s
        self._http: httpx.AsyncClient | None = None
        self._streams: dict[str, RemoteStream] = {}
        self._tasks = SubscriptionTasks(f"skip external service {self.settings.url}")

    @classmethod
    def direct(
        cls,
        host: str,
        streaming_port: int,
        control_port: int,
        secured: bool = False,
        **options: Any,
    ) -> SkipExternalService:
        """The service at `host` with Skip's two ports (Skip's `Entrypoint`); `options` are the
        constructor's keyword arguments."""
        scheme = "https" if secured else "http"
        return cls(
            f"{scheme}://{host}:{streaming_port}",
            f"{scheme}://{host}:{control_port}",
            **options,
        )

    async def subscribe(
        self, instance: str, resource: str, params: Json, callbacks: ExternalCallbacks
    ) -> None:
        self.unsubscribe(instance)
        stream = RemoteStream(self._client(), self.settings, resource, params, callbacks)
        self._streams[instance] = stream
        self._tasks.start(instance, stream.run())
        try:
            async with asyncio.timeout(self.init_timeout_s):
                await asyncio.shield(stream.established)
        except TimeoutError as err:
            self._end(instance, stream)
            raise ExternalStreamError(
                f"{resource!r} of {self.settings.url}: no init within {self.init_timeout_s} s"
            ) from err
        except BaseException:
            self._end(instance, stream)
            raise

    def unsubscribe(self, instance: str) -> None:
        stream = self._streams.get(instance)
        if stream is not None:
            self._end(instance, stream)

    async def shutdown(self) -> None:
        for instance in list(self._streams):
            self.unsubscribe(instance)
        await self._tasks.aclose(cleanup_timeout_s=_DELETE_GRACE_S)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def _end(self, instance: str, stream: RemoteStream) -> None:
        if self._streams.get(instance) is not stream:
            return
        del self._streams[instance]
        self._tasks.stop(instance)
        stream.stopped()
        if stream.stream_id is not None:
            self._tasks.cleanup(self._delete(stream.stream_id), f"delete {stream.stream_id}")

    async def _delete(self, stream_id: str) -> None:
        url = f"{self.settings.control_url}/v1/streams/{stream_id}"
        try:
            await self._client().delete(
                url, headers=self.settings.headers, timeout=self.settings.timeout_s
            )
        except httpx.HTTPError as err:
            logger.debug("DELETE %s failed (the stream expires by itself): %r", url, err)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # Each open stream holds a connection: no cap on them (httpx's default is 100).
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
            # Redirects are followed, as Skip's fetch and EventSource do.
            self._http = httpx.AsyncClient(limits=limits, follow_redirects=True)
        return self._http
