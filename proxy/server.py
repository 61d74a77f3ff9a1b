"""Running the proxy under uvicorn, with an ordered shutdown.

Shutdown, in order: every relayed stream ends (its client reconnects, through the load balancer,
to another proxy) so SSE responses do not pin uvicorn's graceful wait; uvicorn closes its
listener, lets in-flight control requests finish (up to `shutdown_timeout_s`) and cancels the
rest; the gateway then closes the node connections, membership and Redis. SIGTERM and SIGINT
both do this; after SIGTERM the process exits 0 (the proxy holds no state worth a drain).

Several services (`ProxyConfig.services`, or several found in Redis when none is named) get a
gateway each, served under `/<service>/...` (proxy/services.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from broker.http import redaction
from broker.http.client_address import TrustedForwarders
from broker.http.guarded_protocol import ConnectionGuard, GuardedHttpToolsProtocol
from broker.store.connection import close_client, connect, redacted
from broker.store.discovery import find_services
from broker.store.scripts import RedisCallError
from proxy.app import create_app
from proxy.config import ProxyConfig
from proxy.errors import ProxyError
from proxy.gateway import Gateway
from proxy.services import ServiceRouter

logger = logging.getLogger("skiff.proxy")


class RunningProxy:
    """A proxy that is serving at `url` (and at `control_url`, the same routes, when it has a
    control port; else `control_url` is `url`)."""

    def __init__(
        self,
        gateway: Gateway,
        url: str,
        server: uvicorn.Server,
        task: asyncio.Task[None],
        control_url: str | None = None,
        gateways: dict[str, Gateway] | None = None,
        guard: ConnectionGuard | None = None,
    ) -> None:
        #: The (first) service's gateway; `gateways` has every service's by name.
        self.gateway = gateway
        self.gateways = gateways or {}
        #: Its connections' head deadline and per-address counts.
        self.guard = guard
        self.url = url
        self.control_url = control_url or url
        self._server = server
        self._task = task

    def stop(self) -> None:
        """Begin the ordered shutdown (what SIGTERM does)."""
        self._server.should_exit = True

    async def wait_closed(self) -> None:
        await asyncio.shield(self._task)


@asynccontextmanager
async def serving(
    config: ProxyConfig, *, log_level: str | None = None, access_log: bool = False
) -> AsyncIterator[RunningProxy]:
    """Serve until the block exits (or a signal stops the server first)."""
    # A stream URL may carry `?access_token=`: no log line may show it.
    redaction.install()
    # Bound first: a port in use fails here, in one line, before Redis is even reached.
    sockets = [_listen(config.host, config.port)]
    try:
        if config.control_port is not None:
            sockets.append(_listen(config.host, config.control_port))
        async with contextlib.AsyncExitStack() as stack:
            names = await _several_services(config)
            if names:
                gateways = {
                    name: await stack.enter_async_context(
                        Gateway(dataclasses.replace(config, service=name, services=()))
                    )
                    for name in names
                }
                app: Any = ServiceRouter(
                    {name: create_app(g) for name, g in gateways.items()}, gateways
                )
            else:
                gateway = await stack.enter_async_context(Gateway(config))
                gateways = {gateway.keyspace.service if gateway.keyspace else "": gateway}
                app = create_app(gateway)
            gateway = next(iter(gateways.values()))
            forwarders = TrustedForwarders(config.forwarded_allow_ips)
            # Trusted forwarders carry many clients: their connections are not capped.
            guard = ConnectionGuard(
                config.header_timeout_s, config.max_connections_per_address, forwarders.trusts
            )
            for each in gateways.values():
                each.metrics.watch_guard(guard)
            protocol: Any = functools.partial(GuardedHttpToolsProtocol, guard=guard)
            server = _ProxyServer(
                uvicorn.Config(
                    app,
                    http=protocol,
                    # The client is the socket peer, unless a trusted forwarder names another
                    # in X-Forwarded-For (uvicorn rewrites the ASGI `client`); without trusted
                    # forwarders, no middleware reads the header at all.
                    proxy_headers=bool(forwarders),
                    forwarded_allow_ips=list(forwarders.entries),
                    lifespan="off",
                    log_config=None if log_level is None else LOGGING_CONFIG,
                    log_level=log_level,
                    access_log=access_log,
                    timeout_graceful_shutdown=math.ceil(config.shutdown_timeout_s),
                ),
                list(gateways.values()),
            )
            task = gateway.tasks.spawn(server.serve(sockets), name="http server", report=False)
            try:
                while not server.started:
                    if task.done():
                        task.result()
                        raise ProxyError(f"cannot listen on {config.host}:{config.port}")
                    await asyncio.sleep(0.005)
                urls = [_url(config.host, sock.getsockname()[1]) for sock in sockets]
                url, control_url = urls[0], urls[-1]
                yield RunningProxy(gateway, url, server, task, control_url, gateways, guard)
            finally:
                server.should_exit = True
                await task
    finally:
        for sock in sockets:
            sock.close()


async def serve(
    config: ProxyConfig, *, log_level: str | None = "info", access_log: bool = False
) -> None:
    """Serve until SIGINT or SIGTERM."""
    async with serving(config, log_level=log_level, access_log=access_log) as proxy:
        where = proxy.url
        if proxy.control_url != proxy.url:
            where += f" and {proxy.control_url}"
        logger.info(
            "skiff proxy serving on %s (redis %s, service %s)",
            where,
            redacted(config.redis_url),
            _described(proxy.gateways),
        )
        await proxy.wait_closed()


def _described(gateways: dict[str, Gateway]) -> str:
    if len(gateways) == 1:
        return next(iter(gateways)) or "?"
    return ", ".join(f"{name} at /{name}/" for name in gateways)


async def _several_services(config: ProxyConfig) -> Sequence[str]:
    """The services to serve under prefixes: those the config names, else every service found
    in Redis when there are several (one, or none yet: the plain single-service proxy)."""
    if config.services or config.service is not None:
        return config.services
    redis = connect(config.redis_url, timeout_s=config.connect_timeout_s)
    try:
        found = await find_services(redis, "nodes")
    except RedisCallError as err:
        raise ProxyError(f"cannot scan Redis for services: {err}") from err
    finally:
        await close_client(redis)
    return found if len(found) > 1 else ()


class _ProxyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateways: list[Gateway]) -> None:
        super().__init__(config)
        self._gateways = gateways

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            # Not recorded: uvicorn would re-raise it after serving, and a proxy told to stop
            # has stopped successfully.
            self.should_exit = True
            return
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for gateway in self._gateways:
            gateway.stop_streams()
        await super().shutdown(sockets)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ProxyError(f"cannot listen on {host}:{port}: {err}") from err
    return sock


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
