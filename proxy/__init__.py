"""skiff's reverse proxy: one public endpoint in front of a leader and its followers.

Membership comes from the nodes' heartbeats in Redis, streams from a registry in Redis, so
proxies are stateless and several may run side by side. See proxy/app.py for the routes.
"""

from proxy.app import create_app
from proxy.cluster.membership import Cluster, Membership
from proxy.cluster.registry import StreamRecord, StreamRegistry
from proxy.config import ProxyConfig
from proxy.errors import (
    InvalidStreamIdError,
    NodeUnavailableError,
    NoNodeError,
    ProxyConfigError,
    ProxyError,
)
from proxy.gateway import Gateway
from proxy.server import RunningProxy, serve, serving

__all__ = [
    "Cluster",
    "Gateway",
    "InvalidStreamIdError",
    "Membership",
    "NoNodeError",
    "NodeUnavailableError",
    "ProxyConfig",
    "ProxyConfigError",
    "ProxyError",
    "RunningProxy",
    "StreamRecord",
    "StreamRegistry",
    "create_app",
    "serve",
    "serving",
]
