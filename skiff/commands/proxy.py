"""`skiff proxy --redis URL --port P`: the public endpoint in front of a cluster's nodes."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

from broker.errors import BrokerError, ConfigError
from broker.store.rate_limit import RateLimit
from proxy import ProxyConfig, ProxyError, serve
from skiff.commands.jwt_options import add_jwt_options, jwt_config
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
        add_client_limits(parser)
        parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
        parser.add_argument("--access-log", action="store_true", help="log every request")
        add_jwt_options(parser)

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
            "jwt": jwt_config(args),
        }
        if args.cors_origins:
            options["cors_origins"] = tuple(args.cors_origins)
        configure_logging(args.log_level)
        try:
            options.update(client_limits(args))
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


def _env(name: str, kind: type[Any]) -> Any:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return kind(raw)
    except ValueError as err:
        raise SystemExit(f"skiff: ${name} must be a {kind.__name__}, got {raw!r}") from err


def add_client_limits(parser: argparse.ArgumentParser) -> None:
    """The client limits of docs/security.md; each flag's default comes from its variable."""
    d = _DEFAULTS
    group = parser.add_argument_group("client limits (docs/security.md)")
    group.add_argument(
        "--header-timeout",
        type=float,
        default=_env("SKIFF_HEADER_TIMEOUT", float) or d.header_timeout_s,
        help="seconds a request's head may take to arrive, 408 and closed beyond "
        f"(default: $SKIFF_HEADER_TIMEOUT, else {d.header_timeout_s:g})",
    )
    group.add_argument(
        "--body-timeout",
        type=float,
        default=_env("SKIFF_BODY_TIMEOUT", float) or d.body_timeout_s,
        help="seconds a request's body may take to arrive after its head, 408 and closed "
        f"beyond (default: $SKIFF_BODY_TIMEOUT, else {d.body_timeout_s:g})",
    )
    group.add_argument(
        "--max-connections-per-address",
        type=int,
        default=_env("SKIFF_MAX_CONNECTIONS_PER_ADDRESS", int),
        help="connections open at once from one client address, 429 beyond; 0: no cap "
        f"(default: $SKIFF_MAX_CONNECTIONS_PER_ADDRESS, else {d.max_connections_per_address})",
    )
    group.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("SKIFF_FORWARDED_ALLOW_IPS", ""),
        metavar="IPS",
        help="comma-separated addresses or networks of load balancers whose X-Forwarded-For "
        "names the client (* for any peer); default: $SKIFF_FORWARDED_ALLOW_IPS, else none: "
        "the socket peer is the client",
    )
    for action, rate in (("stream", d.stream_rate), ("write", d.write_rate)):
        what = "stream creations" if action == "stream" else "writes"
        upper = action.upper()
        group.add_argument(
            f"--{action}-rate",
            type=float,
            default=_env(f"SKIFF_{upper}_RATE", float),
            metavar="PER_S",
            help=f"{what} per second per client, sustained; 0: no limit "
            f"(default: $SKIFF_{upper}_RATE, else {rate.per_s:g})",
        )
        group.add_argument(
            f"--{action}-burst",
            type=int,
            default=_env(f"SKIFF_{upper}_BURST", int),
            metavar="N",
            help=f"{what} per client at once (default: $SKIFF_{upper}_BURST, else {rate.burst})",
        )


def client_limits(args: argparse.Namespace) -> dict[str, Any]:
    """ProxyConfig options from add_client_limits' flags."""
    d = _DEFAULTS
    options: dict[str, Any] = {
        "header_timeout_s": args.header_timeout,
        "body_timeout_s": args.body_timeout,
        "forwarded_allow_ips": tuple(
            ip.strip() for ip in args.forwarded_allow_ips.split(",") if ip.strip()
        ),
    }
    if args.max_connections_per_address is not None:
        options["max_connections_per_address"] = args.max_connections_per_address
    try:
        for action, rate in (("stream", d.stream_rate), ("write", d.write_rate)):
            per_s = getattr(args, f"{action}_rate")
            burst = getattr(args, f"{action}_burst")
            options[f"{action}_rate"] = RateLimit(
                rate.per_s if per_s is None else per_s, rate.burst if burst is None else burst
            )
    except ConfigError as err:
        raise SystemExit(f"skiff: {err}") from err
    return options


COMMAND = ProxyCommand()
