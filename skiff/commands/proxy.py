"""`skiff proxy --redis URL --port P`: the public endpoint in front of a cluster's nodes."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from broker.errors import BrokerError
from proxy import ProxyConfig, ProxyError, serve
from skiff.commands.options import REDIS_HELP
from skiff.commands.runtime import LOG_LEVELS, configure_logging, run_server

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
            action="append",
            metavar="NAME",
            help="the service to serve; repeat it to serve several, each under /NAME/ "
            "(default: $SKIFF_SERVICE, comma-separated for several; else every service in "
            "Redis: one at /, several each under /NAME/)",
        )
        parser.add_argument(
            "--host",
            default=_DEFAULTS.host,
            help=f"interface to listen on (default {_DEFAULTS.host})",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=_DEFAULTS.port,
            help=f"port to listen on: the URL clients use (default {_DEFAULTS.port})",
        )
        parser.add_argument(
            "--control-port",
            type=int,
            default=None,
            help="listen on this port too, with the same routes: Skip's clients "
            "(SkipServiceBroker) send control requests to 8081 and read streams on 8080",
        )
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
        parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
        parser.add_argument("--access-log", action="store_true", help="log every request")

    def run(self, args: argparse.Namespace) -> int:
        if not args.redis:
            raise SystemExit("skiff: --redis URL (or SKIFF_REDIS_URL) is required")
        options: dict[str, Any] = {
            **_services(args.service),
            "host": args.host,
            "port": args.port,
            "control_port": args.control_port,
            "max_body_bytes": args.max_body_bytes,
            "stream_ttl_s": args.stream_ttl,
        }
        if args.cors_origins:
            options["cors_origins"] = tuple(args.cors_origins)
        configure_logging(args.log_level)
        try:
            # The token comes from the environment only: a command line shows in `ps`.
            config = ProxyConfig.from_env(args.redis, **options)
            run_server(serve(config, log_level=args.log_level, access_log=args.access_log))
        except ProxyError as err:
            raise BrokerError(str(err)) from err
        return 0


def _services(named: list[str] | None) -> dict[str, Any]:
    """--service given once: that service; several times: each under /<service>/; never:
    $SKIFF_SERVICE (comma-separated for several), else whatever Redis holds."""
    if not named:
        named = [n.strip() for n in os.environ.get("SKIFF_SERVICE", "").split(",") if n.strip()]
    if len(named) > 1:
        return {"service": None, "services": tuple(named)}
    return {"service": named[0] if named else None}


COMMAND = ProxyCommand()
