"""`skiff proxy --redis URL --port P`: the public endpoint in front of a cluster's nodes."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from typing import Any

from broker.errors import BrokerError
from proxy import ProxyConfig, ProxyError, serve
from skiff.commands.options import REDIS_HELP
from skiff.commands.runtime import run_server

_DEFAULTS = ProxyConfig(redis_url="redis://localhost")


@dataclass(frozen=True)
class ProxyCommand:
    name: str = "proxy"
    help: str = "route clients to the leader and followers registered in Redis"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--redis",
            default=os.environ.get("SKIFF_REDIS_URL"),
            help=REDIS_HELP,
        )
        parser.add_argument(
            "--service",
            default=os.environ.get("SKIFF_SERVICE"),
            help="the service name (default: $SKIFF_SERVICE, else the only one in Redis)",
        )
        parser.add_argument("--host", default=_DEFAULTS.host, help="interface to listen on")
        parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="port to listen on")
        parser.add_argument(
            "--cors-origin",
            action="append",
            dest="cors_origins",
            metavar="ORIGIN",
            help="allow browser requests from this origin (repeatable; default: "
            "$SKIFF_CORS_ORIGINS, comma-separated; none)",
        )
        parser.add_argument(
            "--max-body-bytes",
            type=int,
            default=_DEFAULTS.max_body_bytes,
            help=f"largest request body accepted (default {_DEFAULTS.max_body_bytes})",
        )
        parser.add_argument(
            "--stream-ttl",
            type=float,
            default=_DEFAULTS.stream_ttl_s,
            help="seconds a stream id survives with no client connected "
            f"(default {_DEFAULTS.stream_ttl_s:g})",
        )
        parser.add_argument(
            "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
        )
        parser.add_argument("--access-log", action="store_true", help="log every request")

    def run(self, args: argparse.Namespace) -> int:
        if not args.redis:
            raise SystemExit("skiff: --redis URL (or SKIFF_REDIS_URL) is required")
        options: dict[str, Any] = {
            "service": args.service or None,
            "host": args.host,
            "port": args.port,
            "max_body_bytes": args.max_body_bytes,
            "stream_ttl_s": args.stream_ttl,
        }
        if args.cors_origins:
            options["cors_origins"] = tuple(args.cors_origins)
        logging.basicConfig(
            level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # httpx logs every upstream request at INFO: that is the access log's job.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
        try:
            # The token comes from the environment only: a command line shows in `ps`.
            config = ProxyConfig.from_env(args.redis, **options)
            run_server(serve(config, log_level=args.log_level, access_log=args.access_log))
        except ProxyError as err:
            raise BrokerError(str(err)) from err
        return 0


COMMAND = ProxyCommand()
