"""`skiff leader MODULE:SERVICE --redis URL`: a leader candidate (several may run; one leads)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from dataclasses import dataclass

from broker.leader.config import LeaderConfig
from broker.leader.node import leader_node
from broker.serving.config import ServeConfig
from broker.serving.loading import load_service
from broker.store.durability import MODES, Durability
from broker.store.redis_url import parse_redis_url
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
        parser.add_argument(
            "--data-loss-wait",
            type=float,
            default=_DEFAULTS.data_loss_wait_s,
            help="seconds a candidate that finds the keyspace gone while writes existed waits "
            "for the node holding them to republish before it starts without them "
            f"(default {_DEFAULTS.data_loss_wait_s:g})",
        )
        parser.add_argument(
            "--lost-history-wait",
            type=float,
            default=None,
            help="seconds a candidate that finds Redis holding a shorter history than was "
            "published (a failover to a stale replica) waits for a leader it cannot see to "
            "republish it (default three lease TTLs)",
        )
        durability = _DEFAULTS.durability
        parser.add_argument(
            "--durability",
            choices=MODES,
            default=os.environ.get("SKIFF_DURABILITY", durability.mode),
            help="what a write waits for before it is acknowledged: none (the primary applied "
            "it), replica (WAIT: replicas hold it), aof (WAITAOF: the primary and replicas "
            "fsynced it); default none, $SKIFF_DURABILITY (docs/operations.md)",
        )
        parser.add_argument(
            "--durability-replicas",
            type=int,
            default=durability.replicas,
            help=f"replicas that must confirm a write (default {durability.replicas})",
        )
        parser.add_argument(
            "--durability-timeout",
            type=int,
            default=durability.timeout_ms,
            help="ms a write waits for them before it is answered 503, not acknowledged "
            f"(default {durability.timeout_ms})",
        )

    def run(self, args: argparse.Namespace) -> int:
        redis_url = require_redis(args)
        config = cluster_serve_config(args)
        service = load_service(args.service)
        leader_config = leader_config_from(args)
        configure_logging(args.log_level)
        logger.info(
            "leader candidate %s of %s using %s, durability %s",
            leader_config.node_id,
            service.name,
            parse_redis_url(redis_url).describe(),
            leader_config.durability.describe(),
        )
        run_server(run_leader(service, config, leader_config, redis_url, args))
        return 0


def leader_config_from(args: argparse.Namespace) -> LeaderConfig:
    """The candidate's LeaderConfig from `skiff leader`'s parsed arguments."""
    return LeaderConfig(
        node_id=args.node_id,
        advertise_url=args.advertise_url,
        lease_ttl_s=args.lease_ttl,
        snapshot_every=args.snapshot_every,
        snapshot_interval_s=args.snapshot_interval,
        data_loss_wait_s=args.data_loss_wait,
        lost_history_wait_s=args.lost_history_wait,
        durability=Durability(args.durability, args.durability_replicas, args.durability_timeout),
    )


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
