"""skiff's serving layer: the HTTP/SSE protocol of PROTOCOL.md around a graph engine."""

from broker.app import create_app
from broker.client import Init, SkiffClient, StreamEvent, Update
from broker.config import ServeConfig
from broker.errors import (
    ApiError,
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
from broker.hub import Hub
from broker.loading import load_service
from broker.serve import RunningNode, running, serve
from broker.sse import new_run_id
from broker.subscription import Subscription

__all__ = [
    "ApiError",
    "BrokerError",
    "ClientError",
    "ConfigError",
    "DrainingError",
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
