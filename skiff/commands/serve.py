"""`skiff serve MODULE:SERVICE`: one node serving a service from memory."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from broker.serving.loading import load_service
from broker.serving.server import serve
from skiff.commands.options import add_serve_options, serve_config
from skiff.commands.runtime import configure_logging, run_server


@dataclass(frozen=True)
class ServeCommand:
    name: str = "serve"
    help: str = "serve a service on a single node"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        add_serve_options(parser)

    def run(self, args: argparse.Namespace) -> int:
        config = serve_config(args)
        service = load_service(args.service)
        configure_logging(args.log_level)
        run_server(serve(service, config, log_level=args.log_level, access_log=args.access_log))
        return 0


COMMAND = ServeCommand()
