"""Who a request is, for the limits kept per client: the seam between requests and rate limits.

A `ClientIdentity` turns a request into the key its rate limits count under, or None for a
request no client limit applies to. `AddressIdentity`, the one in use, keys every request by
its client address: the socket peer, or, from a trusted forwarder (`--forwarded-allow-ips`),
the address that forwarder names in `X-Forwarded-For` (uvicorn rewrites the ASGI `client`
before the app runs). An IPv6 client counts by its /64 (broker/http/client_address.py).

A request carrying the control token is the operator's (a backend, an admin tool), not a
client's: it is not limited, as it is not refused anything else.

A verified user (an identity token's `sub`, docs/security.md) counts as `sub:<sub>` wherever
they connect from (`subject_key`; proxy/app.py decides, since it verifies the token); an
anonymous request falls back to its address. Keys are at most 200 bytes
(broker/store/keyspace.py): a long subject is hashed.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from starlette.requests import Request

from broker.http.auth import ControlToken
from broker.http.client_address import address_key


class ClientIdentity(Protocol):
    def __call__(self, request: Request) -> str | None:
        """The client key of `request` (`addr:<address>`, `sub:<subject>`), or None when no
        client limit applies to it."""
        ...


#: Subjects longer than this count under their digest (a key's part of the 200-byte bound).
_LONGEST_SUBJECT: Final = 100


def subject_key(subject: str) -> str:
    """The client key of a verified user."""
    if len(subject.encode()) <= _LONGEST_SUBJECT:
        return "sub:" + subject
    return "sub#" + hashlib.blake2b(subject.encode(), digest_size=16).hexdigest()


class AddressIdentity:
    """Clients by address; the control token's holder is nobody's client."""

    __slots__ = ("_token",)

    def __init__(self, token: ControlToken) -> None:
        self._token = token

    def __call__(self, request: Request) -> str | None:
        if self._token.configured and self._token.matches(request.headers):
            return None
        client = request.client
        return "addr:" + address_key(client.host if client else "unknown")
