"""The exceptions of the proxy package; all derive from ProxyError."""

from __future__ import annotations


class ProxyError(Exception):
    """Root of every error the proxy raises."""


class ProxyConfigError(ProxyError, ValueError):
    """A proxy setting is out of range or inconsistent."""


class InvalidStreamIdError(ProxyError, ValueError):
    """A string is not a stream id the proxy mints (malformed, or not encoding a node)."""


class NoNodeError(ProxyError):
    """No registered node can take the request right now (none ready, all full or draining)."""


class NodeUnavailableError(ProxyError):
    """A registered node could not be reached or failed mid-request.

    `reached`: the request may have arrived (it failed after connecting), so a write may have
    been applied; only an idempotent request is safe to repeat then."""

    def __init__(self, node_id: str, reason: str, *, reached: bool = False) -> None:
        super().__init__(f"node {node_id} unavailable: {reason}")
        self.node_id = node_id
        self.reason = reason
        self.reached = reached
