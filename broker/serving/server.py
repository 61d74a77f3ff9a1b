"""Running a single node under uvicorn, with an ordered shutdown.

One uvicorn server listens on one or two sockets. With a control port, requests are routed by
the local port they arrived on, so both halves share one event loop, one engine and one set of
signal handlers.

Shutdown, in order: the hub stops intake (new streams and readers get 503) and ends every
connected reader, so SSE responses complete instead of pinning uvicorn's graceful wait; uvicorn
then closes its listeners, asks keep-alive connections to close, waits up to
`shutdown_timeout_s` for in-flight requests and cancels what remains; finally the hub releases
every resource instance.

SIGTERM (and `POST /v1/admin/drain`) first drains the node (broker/serving/drain.py): intake stops,
the connected streams end spread over `drain_window_s`, then the shutdown above runs and the process
exits 0. SIGINT, or a second SIGTERM, shuts down at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import signal
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG

from broker.errors import BrokerError
from broker.external.feeds import Feeds, shutdown_services
from broker.http import redaction
from broker.http.access import Access
from broker.http.guarded_protocol import ConnectionGuard, GuardedHttpToolsProtocol
from broker.http.sse import new_run_id
from broker.runtime.tasks import Supervisor
from broker.serving.app import create_app
from broker.serving.config import ServeConfig
from broker.serving.connection import NodeConnection
from broker.serving.drain import Drain
from broker.serving.feed_sink import HubSink
from broker.serving.hub import Hub
from broker.serving.role import NodeRole
from graph import Engine, Service

logger = logging.getLogger("skiff.broker")


class RunningNode:
    """A node that is serving; `url` is where streams are read, `control_url` where writes go
    (the same when the routes are not split)."""

    def __init__(
        self,
        hub: Hub,
        url: str,
        control_url: str,
        server: _NodeServer,
        task: asyncio.Task[None],
        guard: ConnectionGuard,
    ) -> None:
        self.hub = hub
        self.url = url
        self.control_url = control_url
        #: Its connections' head deadline and per-address counts.
        self.guard = guard
        self._server = server
        self._task = task

    def stop(self) -> None:
        """Begin the ordered shutdown (what SIGTERM does)."""
        self._server.should_exit = True

    def drain(self) -> None:
        """Begin draining, then shut down (what SIGTERM does)."""
        self._server.drain.start()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._task)


@asynccontextmanager
async def running(
    service: Service,
    config: ServeConfig,
    *,
    run: str | None = None,
    log_level: str | None = None,
    access_log: bool = False,
) -> AsyncIterator[RunningNode]:
    """Serve `service` from memory until the block exits (or a signal stops the server first).

    `run` is the `<run>` of event ids: a fresh random id by default. `log_level=None` leaves
    logging configuration alone (for embedding and tests).
    """
    tasks = Supervisor("node")
    feeds = Feeds(service.external_services, tasks)
    try:
        engine = Engine.for_service(service, listener=feeds)
        hub = Hub(engine, run=run or new_run_id(), config=config, feeds=feeds)
        feeds.start(HubSink(lambda: hub))
        async with serving(
            hub, config, log_level=log_level, access_log=access_log, tasks=tasks
        ) as node:
            yield node
    finally:
        feeds.close()
        try:
            await tasks.aclose()
        finally:
            await shutdown_services(service.external_services)


@asynccontextmanager
async def serving(
    hub: Hub,
    config: ServeConfig,
    *,
    node: NodeRole | None = None,
    log_level: str | None = None,
    access_log: bool = False,
    tasks: Supervisor | None = None,
    listeners: Sequence[socket.socket] | None = None,
) -> AsyncIterator[RunningNode]:
    """Serve `hub` over HTTP with `node` deciding writes and readiness (leader, follower).

    `tasks`: the node's supervisor, which owns the server and drain tasks (one of its own
    when None). `listeners`: sockets from `bind_listeners`, kept open by the caller across
    several `serving` blocks (a leader's phases); bound here, and closed on exit, when None."""
    own = tasks is None
    tasks = tasks or Supervisor("node")
    # uvicorn closes the sockets it serves on: it gets duplicates, so the caller's stay
    # listening between two blocks and a client connecting meanwhile waits in the backlog for
    # the next server instead of being refused.
    sockets = [sock.dup() for sock in listeners] if listeners else bind_listeners(config)
    ports = [sock.getsockname()[1] for sock in sockets]
    drain = Drain(hub, config.drain_window_s, control_token=config.control_token, tasks=tasks)
    admin = [drain.route()]
    if not config.split:
        app: ASGIApp = create_app(hub, config, node=node, extra_routes=admin)
    else:
        app = _PortDispatch(
            {
                ports[0]: create_app(hub, config, role="streaming", node=node),
                ports[1]: create_app(hub, config, role="control", node=node, extra_routes=admin),
            }
        )
    # Every connection is admitted by the guard: a head deadline, and a cap per address.
    guard = ConnectionGuard(config.header_timeout_s, config.max_connections_per_address)
    protocol: Any = functools.partial(GuardedHttpToolsProtocol, guard=guard)
    if not config.split:
        # Stream reads are served on the connection itself (serving/connection.py); with split
        # ports the control port must not serve them, so both stay on uvicorn's protocol.
        access = Access(config.control_token, config.jwt)
        protocol = functools.partial(
            NodeConnection, hub=hub, settings=config, guard=guard, access=access
        )
    # A stream URL may carry `?access_token=`: no log line may show it.
    redaction.install()
    server = _NodeServer(
        uvicorn.Config(
            app,
            http=protocol,
            # Nodes read no client address (the proxy faces clients): no middleware per request.
            proxy_headers=False,
            lifespan="off",
            log_config=None if log_level is None else LOGGING_CONFIG,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=math.ceil(config.shutdown_timeout_s),
        ),
        hub,
        drain,
    )
    task = tasks.spawn(server.serve(sockets), name="http server")
    try:
        await _until_started(server, task)
        urls = [_url(config.host, port) for port in ports]
        yield RunningNode(hub, urls[0], urls[-1], server, task, guard)
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            await drain.aclose()
            if own:
                await tasks.aclose()


async def serve(
    service: Service,
    config: ServeConfig,
    *,
    run: str | None = None,
    log_level: str | None = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM."""
    async with running(
        service, config, run=run, log_level=log_level, access_log=access_log
    ) as node:
        where = node.url
        if node.control_url != node.url:
            where += f" (control routes on {node.control_url})"
        logger.info("skiff serving %s on %s, run %s", service.name, where, node.hub.run)
        await node.wait_closed()


class _NodeServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, hub: Hub, drain: Drain) -> None:
        super().__init__(config)
        self._hub = hub
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded as a captured signal: uvicorn would re-raise it after serving, and a
        # drained node must exit 0.
        if sig == signal.SIGTERM:
            if self.drain.started:
                self.should_exit = True
            else:
                self.drain.start_threadsafe()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or self.drain.finished.is_set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.drain()
        try:
            await super().shutdown(sockets)
        finally:
            self._hub.close()


class _PortDispatch:
    """Routes each HTTP request to the app of the local port it arrived on."""

    def __init__(self, apps: Mapping[int, ASGIApp]) -> None:
        self._apps = dict(apps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        app = self._apps.get(server[1]) if server else None
        if app is None:
            # Not reachable through our own sockets; refuse rather than guess a half.
            raise BrokerError(f"request on an unexpected socket {server!r}")
        await app(scope, receive, send)


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    # uvicorn exposes no startup event, only a flag; poll it, failing if serve() ended instead.
    while not server.started:
        if task.done():
            task.result()
            raise BrokerError("the server stopped before it started")
        await asyncio.sleep(0.005)


def bind_listeners(config: ServeConfig) -> list[socket.socket]:
    """The node's listening sockets: its port, and its control port if it has one."""
    ports = [config.port] if config.control_port is None else [config.port, config.control_port]
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(_bind(config.host, port))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it a response written in two parts waits ~40 ms for an ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise BrokerError(f"cannot listen on {host}:{port}: {err}") from err
    return sock


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
