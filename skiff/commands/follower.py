"""`skiff follower MODULE:SERVICE --redis URL`: mirror a leader's shared state and serve it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from broker.follower.node import run_follower
from broker.serving.loading import load_service
from skiff.commands.options import (
    add_cluster_options,
    add_serve_options,
    cluster_serve_config,
    require_redis,
)
from skiff.commands.runtime import configure_logging, ensure_can_listen, run_server


@dataclass(frozen=True)
class FollowerCommand:
    name: str = "follower"
    help: str = "serve a service as a follower of the leader publishing it through Redis"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_serve_options(parser)
        add_cluster_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        redis_url = require_redis(args)
        config = cluster_serve_config(args)
        service = load_service(args.service)
        # A follower listens once it has loaded the leader's state, which may take long.
        ensure_can_listen(config.host, config.port, "choose another with --port")
        configure_logging(args.log_level)
        run_server(
            run_follower(
                service,
                config,
                redis_url=redis_url,
                node_id=args.node_id,
                advertise_url=args.advertise_url,
                log_level=args.log_level,
                access_log=args.access_log,
            )
        )
        return 0


COMMAND = FollowerCommand()
