"""The control token check shared by nodes and the proxy: `Authorization: Bearer <token>`,
compared in constant time so response timing reveals nothing about the token."""

from __future__ import annotations

import hmac


def bearer_matches(authorization: str, token: bytes) -> bool:
    """Whether an Authorization header value carries exactly `token`."""
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)
