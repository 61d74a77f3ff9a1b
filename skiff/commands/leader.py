"""`skiff leader MODULE:SERVICE --redis URL`: a leader candidate (several may run; one leads)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import dataclass

from broker.leader.config import LeaderConfig
from broker.leader.node import leader_node
from broker.serving.config import ServeConfig
from broker.serving.loading import load_service
from broker.store.connection import redacted
from graph import Service
from skiff.commands.options import (
    add_cluster_options,
    add_serve_options,
    cluster_serve_config,
    require_redis,
)
from skiff.commands.runtime import configure_logging, run_server

logger = logging.getLogger("skiff.broker")

_DEFAULTS = LeaderConfig(node_id="-")


@dataclass(frozen=True)
class LeaderCommand:
    name: str = "leader"
    help: str = "compete for leadership of a service and, while leading, publish it through Redis"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_serve_options(parser)
        add_cluster_options(parser)
        parser.add_argument(
            "--lease-ttl",
            type=float,
            default=_DEFAULTS.lease_ttl_s,
            help=f"seconds the lease outlives a silent leader (default {_DEFAULTS.lease_ttl_s:g})",
        )
        parser.add_argument(
            "--snapshot-every",
            type=int,
            default=_DEFAULTS.snapshot_every,
            help=f"versions between snapshots (default {_DEFAULTS.snapshot_every})",
        )
        parser.add_argument(
            "--snapshot-interval",
            type=float,
            default=_DEFAULTS.snapshot_interval_s,
            help="seconds after which a snapshot is taken anyway when the version moved "
            f"(default {_DEFAULTS.snapshot_interval_s:g})",
        )

    def run(self, args: argparse.Namespace) -> int:
        redis_url = require_redis(args)
        config = cluster_serve_config(args)
        service = load_service(args.service)
        leader_config = LeaderConfig(
            node_id=args.node_id,
            advertise_url=args.advertise_url,
            lease_ttl_s=args.lease_ttl,
            snapshot_every=args.snapshot_every,
            snapshot_interval_s=args.snapshot_interval,
        )
        configure_logging(args.log_level)
        logger.info(
            "leader candidate %s of %s using %s",
            leader_config.node_id,
            service.name,
            redacted(redis_url),
        )
        run_server(run_leader(service, config, leader_config, redis_url, args))
        return 0


async def run_leader(
    service: Service,
    config: ServeConfig,
    leader_config: LeaderConfig,
    redis_url: str,
    args: argparse.Namespace,
) -> None:
    """Run until SIGINT or SIGTERM, then hand the lease over and shut down in order."""
    async with leader_node(
        service,
        config,
        leader_config,
        redis_url=redis_url,
        log_level=args.log_level,
        access_log=args.access_log,
    ) as node:
        loop = asyncio.get_running_loop()

        def stop(signum: int, frame: object) -> None:
            loop.call_soon_threadsafe(node.stop)

        # signal.signal, not loop.add_signal_handler: uvicorn installs its own handlers while
        # a server runs and restores (then re-raises into) these afterwards.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        logger.info("%s serving on %s", leader_config.node_id, node.url)
        await node.wait_stopping()


COMMAND = LeaderCommand()
