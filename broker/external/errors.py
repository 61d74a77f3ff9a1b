"""What the external-service adapters raise; every one is a BrokerError."""

from __future__ import annotations

from broker.errors import BrokerError


class ExternalServiceError(BrokerError):
    """An external service could not do what was asked of it."""


class UnknownExternalResourceError(ExternalServiceError, LookupError):
    """The external service has no resource by that name."""


class ExternalFetchError(ExternalServiceError):
    """An HTTP request to an external service failed: an error status (`status`), or no answer
    at all (`status` None: refused, reset, timed out)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ExternalStreamError(ExternalServiceError):
    """A Skip-protocol event stream misbehaved: no `init` in time, malformed data, or an
    `error` event before the subscription was established."""
