"""What `skiff dev` prints once its cluster is ready: the URL to open, the service it runs (its
resources and inputs), a request to try, and the Redis it uses with a command that reads it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from broker.store.keyspace import Keyspace
from graph import Service

#: The service whose front end the proxy serves at `/` (proxy/static/index.html).
EXAMPLE_APP_SERVICE: Final = "hackernews"


@dataclass(frozen=True, slots=True)
class ServiceOutline:
    name: str
    resources: tuple[str, ...]
    inputs: tuple[str, ...]

    @classmethod
    def of(cls, service: Service) -> ServiceOutline:
        return cls(service.name, service.resource_names, service.input_names)


def ready_banner(
    url: str,
    service: ServiceOutline,
    redis_url: str,
    skiff: str,
    control_port: int | None = None,
    *,
    auth: bool = False,
) -> list[str]:
    """The lines to print; `skiff` is how the user runs the skiff command (see skiff_program);
    `control_port`: the proxy's second port, for Skip's clients; `auth`: identity tokens are on
    with the demo login."""
    lines = [
        f"ready: open {url}   (Ctrl-C stops everything)",
        f"  service {service.name}: resources {_names(service.resources)}; "
        f"inputs {_names(service.inputs)}",
    ]
    if control_port is not None:
        host, _, port = url.removeprefix("http://").rpartition(":")
        lines.append(
            f'  Skip clients: SkipServiceBroker({{host: "{host}", streaming_port: {port}, '
            f"control_port: {control_port}}})"
        )
    if service.name == EXAMPLE_APP_SERVICE:
        lines += [
            f"  the app: {url}/   cluster status: {url}/_skiff/",
            f"  read:    curl -X POST {url}/v1/snapshot/posts -d '{{\"limit\": 3}}'",
        ]
        if auth:
            lines.append(
                f"  auth:    on, with a demo key made for this run; a token for curl: "
                f'curl -X POST {url}/demo/login -d \'{{"user": "alice"}}\''
            )
    else:
        lines.append(f"  cluster status: {url}/_skiff/")
        if service.resources:
            first = service.resources[0]
            lines.append(
                f"  read:    curl -X POST {url}/v1/snapshot/{first} -d '{{}}'"
                f"   (with the params {first} expects, as JSON)"
            )
        if service.inputs:
            lines.append(
                f"  write:   PATCH {url}/v1/inputs/<input> with [[key, [value, ...]], ...]"
                "   (docs/protocol.md)"
            )
    deltas = shlex.quote(Keyspace(service.name).deltas)
    lines += [
        f"  redis:   {redis_url}",
        f"           {skiff} redis-cli --redis {redis_url} XLEN {deltas}",
    ]
    return lines


def skiff_program(argv0: str | None = None) -> str:
    """The command that runs skiff, as the user can type it again: `skiff` when that is what
    PATH finds, else the script as it was invoked (`.venv/bin/skiff` under `make dev`), else
    `python -m skiff`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name != "skiff":
        return f"{shlex.quote(sys.executable)} -m skiff"
    on_path = shutil.which("skiff")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "skiff"
    return shlex.quote(argv0)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"
