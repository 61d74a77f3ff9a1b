"""`skiff dev [MODULE:SERVICE]`: the whole cluster on one machine (`make dev`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from broker.errors import BrokerError
from broker.runtime.tasks import stop_all
from broker.serving.loading import load_service
from skiff.commands.runtime import LOG_LEVELS, ensure_can_listen
from skiff.dev.banner import ServiceOutline, ready_banner, skiff_program
from skiff.dev.cluster import DevCluster, DevOptions

DEFAULT_SERVICE = "examples.hackernews:service"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class DevCommand:
    name: str = "dev"
    help: str = "run Valkey, a leader, followers and the proxy locally, behind one URL"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "service",
            nargs="?",
            default=DEFAULT_SERVICE,
            metavar="MODULE:SERVICE",
            help="the graph.Service to run, as module:attribute or path/to/file.py:attribute "
            f"(default {DEFAULT_SERVICE})",
        )
        parser.add_argument(
            "--followers", type=int, default=2, help="how many followers (default 2)"
        )
        parser.add_argument(
            "--port",
            type=int,
            default=None,
            help=f"the proxy's port: the URL to open (default $PORT, else {DEFAULT_PORT})",
        )
        parser.add_argument(
            "--control-port",
            type=int,
            default=None,
            help="the proxy's second port, for Skip's clients (SkipServiceBroker's control "
            "port); 0: none (default $CONTROL_PORT, else --port + 1: 8081)",
        )
        parser.add_argument(
            "--host", default="127.0.0.1", help="interface for every process (default 127.0.0.1)"
        )
        parser.add_argument(
            "--redis", default=None, help="use this Redis instead of an embedded Valkey"
        )
        parser.add_argument(
            "--auth",
            choices=["auto", "on", "off"],
            default="auto",
            help="identity tokens: `on` makes a demo key for this run (SKIFF_JWT_SECRET and the "
            "example app's login, SKIFF_DEMO_SIGNING_KEY) unless the environment has one; "
            f"`auto` (default) is `on` for {DEFAULT_SERVICE} only, whose page logs in",
        )
        parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
        parser.add_argument(
            "--access-log", action="store_true", help="every process logs every request"
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.followers < 0:
            raise BrokerError("--followers must be >= 0")
        port = _port(args.port)
        control_port = _control_port(args.control_port, port)
        # Before anything starts: a server already on the port would answer for this cluster.
        other = port + 2 if port < 65534 else 8082
        for taken in (port, control_port):
            if taken is not None:
                ensure_can_listen(
                    args.host,
                    taken,
                    f"another skiff dev? choose another port: make dev PORT={other} "
                    f"(or skiff dev --port {other}; --control-port 0 opens no second port)",
                )
        service = load_service(args.service)
        options = DevOptions(
            service=args.service,
            service_name=service.name,
            followers=args.followers,
            host=args.host,
            port=port,
            control_port=control_port,
            redis_url=args.redis,
            log_level=args.log_level,
            access_log=args.access_log,
            env=auth_env(args.auth, args.service, os.environ),
        )
        return asyncio.run(_run(options, ServiceOutline.of(service)))


def auth_env(mode: str, service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What `skiff dev` adds to its processes' environment for identity tokens.

    On, a cluster of this machine only gets a key made for this run: the example app's demo
    login signs with it, the proxy and nodes verify with it (docs/security.md). A key of the
    environment's is used instead when there is one; `off` adds nothing."""
    if mode == "off" or (mode == "auto" and service != DEFAULT_SERVICE):
        return {}
    if environ.get("SKIFF_JWKS_URL") or environ.get("SKIFF_JWT_PUBLIC_KEY_FILE"):
        return {}  # the user's identity provider: no demo login (it cannot sign for it)
    secret = environ.get("SKIFF_JWT_SECRET") or secrets.token_urlsafe(32)
    return {"SKIFF_JWT_SECRET": secret, "SKIFF_DEMO_SIGNING_KEY": secret}


def _control_port(flag: int | None, port: int) -> int | None:
    if flag is None:
        text = os.environ.get("CONTROL_PORT")
        if text:
            try:
                flag = int(text)
            except ValueError:
                raise BrokerError(f"CONTROL_PORT must be a port number, got {text!r}") from None
    if flag is None:
        return port + 1 if 0 < port < 65535 else None
    return flag or None


def _port(flag: int | None) -> int:
    if flag is not None:
        return flag
    text = os.environ.get("PORT") or str(DEFAULT_PORT)
    try:
        return int(text)
    except ValueError:
        raise BrokerError(f"PORT must be a port number, got {text!r}") from None


async def _run(options: DevOptions, service: ServiceOutline) -> int:
    cluster = DevCluster(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    try:
        starting = asyncio.create_task(cluster.start())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            await stop_all(starting)
            return 0
        starting.result()
        program = skiff_program()
        control = options.control_port
        auth = bool(options.env.get("SKIFF_DEMO_SIGNING_KEY"))
        for line in ready_banner(
            cluster.url, service, cluster.redis_url, program, control, auth=auth
        ):
            cluster.say(line)
        exited = asyncio.create_task(cluster.wait_for_exit())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            cluster.say(f"{exited.result().name} exited; stopping the others")
            return 1
        exited.cancel()
        return 0
    except BrokerError as err:
        cluster.say(f"error: {err}")
        return 1
    finally:
        cluster.say("stopping")
        stopping.cancel()
        await cluster.stop()
        cluster.say("stopped")


COMMAND = DevCommand()
