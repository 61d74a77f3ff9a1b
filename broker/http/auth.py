"""The control token check shared by nodes and the proxy: `Authorization: Bearer <token>`,
compared in constant time so response timing reveals nothing about the token."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from broker.http.errors import HttpError


def bearer_matches(authorization: str, token: bytes) -> bool:
    """Whether an Authorization header value carries exactly `token`."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)


class ControlToken:
    """The control token of a node or proxy; with none configured every request passes."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    @property
    def configured(self) -> bool:
        return self._token is not None

    def matches(self, headers: Mapping[str, str]) -> bool:
        """Whether `headers` carry the token (False when none is configured)."""
        return self._token is not None and bearer_matches(
            headers.get("authorization", ""), self._token
        )

    def require(self, headers: Mapping[str, str]) -> None:
        """Raise HttpError 401 unless `headers` carry the token (when one is configured)."""
        if self._token is not None and not self.matches(headers):
            raise HttpError(401, "missing or invalid control token")
