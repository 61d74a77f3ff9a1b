"""`skiff serve MODULE:SERVICE`: one node serving a service from memory."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass
from typing import Any

from broker.config import ServeConfig
from broker.loading import load_service
from broker.serve import serve

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
    ("--control-port", "control_port", int, "serve the control routes on this port instead"),
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
)


@dataclass(frozen=True)
class ServeCommand:
    name: str = "serve"
    help: str = "serve a service on a single node"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "service",
            metavar="MODULE:SERVICE",
            help="the graph.Service to serve, e.g. examples.hackernews:service",
        )
        for flag, field, kind, text in _OPTIONS:
            parser.add_argument(flag, dest=field, type=kind, default=None, help=text)
        parser.add_argument(
            "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
        )
        parser.add_argument("--access-log", action="store_true", help="log every request")

    def run(self, args: argparse.Namespace) -> int:
        options = {field: getattr(args, field) for _, field, _, _ in _OPTIONS}
        # From the environment only: a token on the command line would show in `ps`.
        options["control_token"] = os.environ.get("SKIFF_CONTROL_TOKEN") or None
        config = ServeConfig(**{k: v for k, v in options.items() if v is not None})
        service = load_service(args.service)
        asyncio.run(serve(service, config, log_level=args.log_level, access_log=args.access_log))
        return 0


COMMAND = ServeCommand()
