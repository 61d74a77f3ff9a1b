"""skiff's serving layer: the HTTP/SSE protocol of docs/protocol.md around a graph engine.

The rooms (docs/architecture.md): `store` (what lives in Redis), `http` (protocol plumbing shared
with the proxy), `serving` (a node's HTTP app over a hub), `leader`, `follower`, `cluster` (what
nodes know of each other) and `runtime` (process plumbing).

The public names below are imported on first use: the proxy imports `broker.store` and
`broker.http` without loading the graph engine that `serving` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.client import Init, SkiffClient, StreamEvent, Update
    from broker.errors import (
        BrokerError,
        ClientError,
        ConfigError,
        DrainingError,
        ServiceLoadError,
        StreamDisconnectedError,
        StreamNotFoundError,
        StreamProtocolError,
        UnknownStreamError,
    )
    from broker.http.errors import HttpError
    from broker.http.sse import new_run_id
    from broker.serving.app import create_app
    from broker.serving.config import ServeConfig
    from broker.serving.hub import Hub
    from broker.serving.loading import load_service
    from broker.serving.server import RunningNode, running, serve
    from broker.serving.streams.subscription import Subscription

_WHERE = {
    "BrokerError": "broker.errors",
    "ClientError": "broker.errors",
    "ConfigError": "broker.errors",
    "DrainingError": "broker.errors",
    "ServiceLoadError": "broker.errors",
    "StreamDisconnectedError": "broker.errors",
    "StreamNotFoundError": "broker.errors",
    "StreamProtocolError": "broker.errors",
    "UnknownStreamError": "broker.errors",
    "HttpError": "broker.http.errors",
    "Init": "broker.client",
    "SkiffClient": "broker.client",
    "StreamEvent": "broker.client",
    "Update": "broker.client",
    "new_run_id": "broker.http.sse",
    "create_app": "broker.serving.app",
    "ServeConfig": "broker.serving.config",
    "Hub": "broker.serving.hub",
    "load_service": "broker.serving.loading",
    "RunningNode": "broker.serving.server",
    "running": "broker.serving.server",
    "serve": "broker.serving.server",
    "Subscription": "broker.serving.streams.subscription",
}

__all__ = [
    "BrokerError",
    "ClientError",
    "ConfigError",
    "DrainingError",
    "HttpError",
    "Hub",
    "Init",
    "RunningNode",
    "ServeConfig",
    "ServiceLoadError",
    "SkiffClient",
    "StreamDisconnectedError",
    "StreamEvent",
    "StreamNotFoundError",
    "StreamProtocolError",
    "Subscription",
    "UnknownStreamError",
    "Update",
    "create_app",
    "load_service",
    "new_run_id",
    "running",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'broker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
