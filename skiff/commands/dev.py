"""`skiff dev [MODULE:SERVICE]`: the whole cluster on one machine (`make dev`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from dataclasses import dataclass

from broker.errors import BrokerError
from broker.runtime.tasks import stop_all
from broker.serving.loading import load_service
from skiff.dev.cluster import DevCluster, DevOptions

DEFAULT_SERVICE = "examples.hackernews:service"


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
            help=f"the graph.Service to run (default {DEFAULT_SERVICE})",
        )
        parser.add_argument(
            "--followers", type=int, default=2, help="how many followers (default 2)"
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT") or 8080),
            help="the proxy's port: the URL to open (default $PORT, else 8080)",
        )
        parser.add_argument("--host", default="127.0.0.1", help="interface for every process")
        parser.add_argument(
            "--redis", default=None, help="use this Redis instead of an embedded Valkey"
        )
        parser.add_argument(
            "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
        )

    def run(self, args: argparse.Namespace) -> int:
        if args.followers < 0:
            raise BrokerError("--followers must be >= 0")
        options = DevOptions(
            service=args.service,
            service_name=load_service(args.service).name,
            followers=args.followers,
            host=args.host,
            port=args.port,
            redis_url=args.redis,
            log_level=args.log_level,
        )
        return asyncio.run(_run(options))


async def _run(options: DevOptions) -> int:
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
        cluster.say(f"ready: open {cluster.url}   (Ctrl-C stops everything)")
        cluster.say(f"  the app: {cluster.url}/   cluster status: {cluster.url}/_skiff/")
        cluster.say(f"  curl -X POST {cluster.url}/v1/snapshot/posts -d '{{\"limit\": 3}}'")
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
