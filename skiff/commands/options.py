"""Command-line options shared by the commands that run a node (serve, leader, follower)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from typing import Any

from broker.serving.config import ServeConfig
from skiff.commands.jwt_options import add_jwt_options, jwt_config

_DEFAULTS = ServeConfig()

# (flag, ServeConfig field, type, help); an omitted flag leaves the field's default in force, so
# defaults live in ServeConfig only.
_OPTIONS: tuple[tuple[str, str, type[Any], str], ...] = (
    ("--host", "host", str, f"interface to listen on (default {_DEFAULTS.host})"),
    (
        "--port",
        "port",
        int,
        f"port of the SSE route, and of all routes unless split (default {_DEFAULTS.port})",
    ),
    (
        "--control-port",
        "control_port",
        int,
        "listen on this port too, for Skip's clients (SkipServiceBroker's control port, 8081): "
        "`skiff serve` moves the control routes there, as Skip does; a leader or follower "
        "serves every route on both ports",
    ),
    (
        "--heartbeat",
        "heartbeat_s",
        float,
        f"seconds between heartbeats on an idle stream (default {_DEFAULTS.heartbeat_s:g})",
    ),
    (
        "--max-body-bytes",
        "max_body_bytes",
        int,
        f"largest request body accepted (default {_DEFAULTS.max_body_bytes})",
    ),
    (
        "--history",
        "history_versions",
        int,
        f"updates kept per instance for Last-Event-ID resume "
        f"(default {_DEFAULTS.history_versions})",
    ),
    (
        "--idle-timeout",
        "idle_instance_s",
        float,
        f"seconds before an instance without readers is released "
        f"(default {_DEFAULTS.idle_instance_s:g})",
    ),
    (
        "--max-pending",
        "max_pending_updates",
        int,
        f"updates queued per reader before coalescing (default {_DEFAULTS.max_pending_updates})",
    ),
    (
        "--max-lag",
        "max_lag_updates",
        int,
        f"updates a reader may fall behind before it is "
        f"disconnected (default {_DEFAULTS.max_lag_updates})",
    ),
    (
        "--max-params-bytes",
        "max_params_bytes",
        int,
        f"largest stream/snapshot params, as JSON (default {_DEFAULTS.max_params_bytes})",
    ),
    (
        "--max-key-bytes",
        "max_key_bytes",
        int,
        f"largest key in a write, as JSON (default {_DEFAULTS.max_key_bytes})",
    ),
    (
        "--max-value-bytes",
        "max_value_bytes",
        int,
        f"largest value in a write, as JSON (default {_DEFAULTS.max_value_bytes})",
    ),
    (
        "--max-streams",
        "max_streams",
        int,
        f"stream ids a node holds at once, 429 beyond (default {_DEFAULTS.max_streams})",
    ),
    (
        "--max-streams-per-instance",
        "max_streams_per_instance",
        int,
        f"stream ids (so readers) per resource instance, 429 beyond "
        f"(default {_DEFAULTS.max_streams_per_instance})",
    ),
    (
        "--send-timeout",
        "send_timeout_s",
        float,
        f"seconds a stream write may block (default {_DEFAULTS.send_timeout_s:g})",
    ),
    (
        "--shutdown-timeout",
        "shutdown_timeout_s",
        float,
        f"seconds to wait for requests at shutdown (default {_DEFAULTS.shutdown_timeout_s:g})",
    ),
    (
        "--header-timeout",
        "header_timeout_s",
        float,
        f"seconds a request's head may take to arrive, 408 and closed beyond "
        f"(default {_DEFAULTS.header_timeout_s:g})",
    ),
    (
        "--body-timeout",
        "body_timeout_s",
        float,
        f"seconds a request's body may take to arrive after its head, 408 and closed beyond "
        f"(default {_DEFAULTS.body_timeout_s:g})",
    ),
    (
        "--max-connections-per-address",
        "max_connections_per_address",
        int,
        "connections open at once from one client address, 429 beyond (default 0: no cap, "
        "a node's clients are proxies; set it on a `skiff serve` that faces clients)",
    ),
    (
        "--drain-window",
        "drain_window_s",
        float,
        f"on SIGTERM, seconds over which connected streams are ended before exiting "
        f"(default {_DEFAULTS.drain_window_s:g})",
    ),
)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "service",
        metavar="MODULE:SERVICE",
        help="the graph.Service to serve, e.g. examples.hackernews:service (from the working "
        "directory) or path/to/hackernews.py:service (from anywhere)",
    )
    for flag, field, kind, text in _OPTIONS:
        parser.add_argument(flag, dest=field, type=kind, default=None, help=text)
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    add_jwt_options(parser)


def serve_config(args: argparse.Namespace) -> ServeConfig:
    options = {field: getattr(args, field) for _, field, _, _ in _OPTIONS}
    # From the environment only: a token on the command line would show in `ps`.
    options["control_token"] = os.environ.get("SKIFF_CONTROL_TOKEN") or None
    options["jwt"] = jwt_config(args)
    return ServeConfig(**{k: v for k, v in options.items() if v is not None})


def cluster_serve_config(args: argparse.Namespace) -> ServeConfig:
    """serve_config for a leader or follower: every route on --port, the one URL the proxy and
    the other nodes know it by (writes, stream creation and reads all go there), and on
    --control-port as well when given."""
    return dataclasses.replace(serve_config(args), split_routes=False)


REDIS_HELP = (
    "Redis URL: redis://host:port[/db] (rediss:// for TLS), "
    "redis+sentinel://host:26379,host:26379/<master>[/db] (Sentinel), "
    "redis+cluster://host:port,host:port (Redis Cluster); rediss+sentinel:// and "
    "rediss+cluster:// for TLS; credentials allowed, see docs/operations.md "
    "(default: $SKIFF_REDIS_URL)"
)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--redis and --node-id, for nodes that replicate through Redis."""
    parser.add_argument("--redis", default=os.environ.get("SKIFF_REDIS_URL"), help=REDIS_HELP)
    parser.add_argument(
        "--node-id",
        default=os.environ.get("SKIFF_NODE_ID") or socket.gethostname(),
        help="this node's name in the cluster (default: $SKIFF_NODE_ID, else the hostname)",
    )
    parser.add_argument(
        "--advertise-url",
        default=os.environ.get("SKIFF_ADVERTISE_URL"),
        help="the URL other components use to reach this node "
        "(default: http://<host>:<port> as bound)",
    )


def require_redis(args: argparse.Namespace) -> str:
    url: Any = args.redis
    if not url:
        raise SystemExit("skiff: --redis URL (or SKIFF_REDIS_URL) is required")
    return str(url)
