"""The exceptions of the broker package; all derive from BrokerError."""

from __future__ import annotations


class BrokerError(Exception):
    """Root of every error the broker raises."""


class ConfigError(BrokerError, ValueError):
    """A configuration value is out of range or inconsistent."""


class ServiceLoadError(BrokerError):
    """A `module:attribute` service reference could not be loaded."""


class UnknownStreamError(BrokerError, LookupError):
    """No stream has this id (never created, deleted, or expired while idle)."""


class StreamIdConflictError(BrokerError):
    """A stream id given at creation already names a stream of another resource instance."""


class UnavailableError(BrokerError):
    """The node cannot do this now; nothing was changed, and the client may retry (HTTP 503)."""


class DrainingError(UnavailableError):
    """The node is shutting down and accepts no new streams."""


class NotLeaderError(UnavailableError):
    """No leader can take this write: this node stopped leading, none holds the lease, or the
    one that does cannot be reached. The write was not applied."""


class RedisUnavailableError(UnavailableError):
    """Redis cannot be reached, so nothing can be made durable now."""


class ExternalResourceError(BrokerError):
    """An external resource a resource reads could not be subscribed to, or its update broke
    the resource (HTTP 502: the failure is upstream of skiff)."""


class ExternalLoadingError(UnavailableError):
    """An external resource a resource reads has not delivered its content yet (HTTP 503)."""


class OverloadedError(BrokerError):
    """The node holds as many streams as it may; the client should retry later (HTTP 429)."""


class ClientError(BrokerError):
    """A skiff server answered a client request with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class StreamNotFoundError(ClientError):
    """The server does not know the stream (deleted, expired, or the server restarted)."""


class StreamDisconnectedError(BrokerError):
    """A stream's connection failed and reconnecting was not allowed or kept failing."""


class StreamProtocolError(BrokerError):
    """A server sent an event stream that does not follow docs/protocol.md."""
