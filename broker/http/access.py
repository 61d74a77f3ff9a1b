"""Access: who is calling (an operator, a user, nobody) and what they may do — one set of
rules for every node and the proxy (docs/security.md, "Per-user auth").

Credentials:
- the control token, `Authorization: Bearer <control token>`: an operator or another skiff
  component (compared in constant time, as before);
- an identity token (JWT, broker/http/identity.py), when one is configured, from the first of:
  `X-Skiff-User-Token` (how the proxy passes the user's token on to a node, its own
  Authorization holding the control token), `Authorization: Bearer <jwt>`, the `skiff_token`
  cookie (reads only: a cross-site form can make a browser send a cookie, never a header), and
  `?access_token=` on a stream read (EventSource cannot set headers).

When an identity token accompanies the control token, the user's rules apply: the proxy always
sends its control token, so a node still checks what the user may do (the proxy is not trusted
blindly). With identity tokens off, nothing here looks at a token other than the control token,
and every rule is the one of before (a Skip client sees no difference).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl

from broker.http.auth import ControlToken, bearer_matches
from broker.http.errors import HttpError
from broker.http.identity import Identity, TokenVerifier, verifier_for
from broker.http.jwt_config import JwtConfig

USER_TOKEN_HEADER: Final = "x-skiff-user-token"
TOKEN_COOKIE: Final = "skiff_token"
TOKEN_QUERY: Final = "access_token"
_NO_CLAIMS: Final[Mapping[str, Any]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from. `token`: the identity token as presented, for the proxy to
    pass on to a node; never logged, never written anywhere."""

    operator: bool = False
    identity: Identity | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def subject(self) -> str | None:
        return None if self.identity is None else self.identity.subject


ANONYMOUS: Final = Caller()


class Access:
    """The rules of one node or proxy: its control token and its identity-token settings."""

    def __init__(self, control_token: str | None, jwt: JwtConfig | None = None) -> None:
        self.control = ControlToken(control_token)
        self._control_token = None if control_token is None else control_token.encode()
        self.verifier: TokenVerifier | None = (
            verifier_for(jwt) if jwt is not None and jwt.enabled else None
        )

    @property
    def enabled(self) -> bool:
        """Whether identity tokens are verified (auth is on)."""
        return self.verifier is not None

    # -- who is calling ----------------------------------------------------------------------
    def presented(
        self, headers: Mapping[str, str], query: str = "", *, cookie: bool, in_query: bool
    ) -> tuple[bool, str | None]:
        """(whether the control token was presented, the identity token presented if any)."""
        authorization = headers.get("authorization", "")
        operator = self._control_token is not None and bearer_matches(
            authorization, self._control_token
        )
        if self.verifier is None:
            return operator, None
        token = headers.get(USER_TOKEN_HEADER) or None
        if token is None and not operator:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() == "bearer" and given.strip():
                token = given.strip()
        if token is None and cookie:
            token = cookie_value(headers.get("cookie", ""), TOKEN_COOKIE)
        if token is None and in_query and query:
            token = query_value(query, TOKEN_QUERY)
        return operator, token

    async def caller(
        self,
        headers: Mapping[str, str],
        query: str = "",
        *,
        cookie: bool = True,
        in_query: bool = False,
    ) -> Caller:
        """The caller of a request; 401 (TokenRejectedError) for a token that is not valid."""
        operator, token = self.presented(headers, query, cookie=cookie, in_query=in_query)
        if token is None or self.verifier is None:
            return Caller(operator) if operator else ANONYMOUS
        return Caller(operator, await self.verifier.verify(token), token)

    def caller_now(self, headers: Mapping[str, str], query: str = "") -> Caller:
        """`caller` of a stream read, without awaiting: raises KeyNotCachedError when a JWKS
        fetch is needed."""
        operator, token = self.presented(headers, query, cookie=True, in_query=True)
        if token is None or self.verifier is None:
            return Caller(operator) if operator else ANONYMOUS
        return Caller(operator, self.verifier.verify_now(token), token)

    # -- what they may do --------------------------------------------------------------------
    def require_write(self, caller: Caller, collection: str) -> None:
        """PATCH: the control token, or (auth on) a token whose scope grants `collection`."""
        if self.verifier is None:
            self._require_operator(caller)
            return
        if caller.identity is not None:
            if not caller.identity.may_write(collection):
                raise HttpError(403, f"this token may not write {collection!r}")
            return
        if not caller.operator:
            raise HttpError(401, "missing token: writes need a token that may write them")

    def require_operator(self, caller: Caller) -> None:
        """Admin routes, chosen stream ids: the control token, when one is configured."""
        self._require_operator(caller)

    def require_reader(self, caller: Caller, resource: str, public: bool) -> None:
        """Creating a stream, a snapshot, a lookup: with auth on, a token unless the resource
        is public."""
        if self.verifier is not None and caller.identity is None and not public:
            raise HttpError(401, f"missing token: resource {resource!r} is not public")

    def require_stream(
        self, caller: Caller, stream_id: str, owner: str | None, *, deleting: bool = False
    ) -> None:
        """Reading or deleting a stream. A stream someone owns answers as if it did not exist
        to anybody else (404: a stream id is a capability; refusing it otherwise would confirm
        it names a stream); its owner's token is needed, except that an operator (the control
        token, no user token) may delete any stream. An unowned stream (auth off, or opened
        without a token on a public resource) is read by anyone holding its id and deleted
        under the rule of before."""
        if owner is None:
            if deleting:
                self._require_operator(caller)
            return
        if caller.identity is None:
            if deleting and caller.operator:
                return
            raise HttpError(401, "missing token: this stream belongs to a user")
        if caller.identity.subject != owner:
            raise HttpError(404, f"unknown stream {stream_id!r}")

    def valid_until(self, caller: Caller) -> float | None:
        """When the caller's token stops being accepted (its `exp` plus the leeway, seconds
        since the epoch): an open stream of theirs ends then. None: no token."""
        if caller.identity is None or self.verifier is None:
            return None
        return caller.identity.expires_at + self.verifier.config.leeway_s

    def claims(self, caller: Caller) -> Mapping[str, Any] | None:
        """The claims a resource instance is built with: None with auth off (claims cannot
        matter, instances are shared as before), empty for an anonymous caller."""
        if self.verifier is None:
            return None
        return _NO_CLAIMS if caller.identity is None else caller.identity.claims

    def _require_operator(self, caller: Caller) -> None:
        if self.control.configured and not caller.operator:
            raise HttpError(401, "missing or invalid control token")


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, or None."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            return value.strip('"')
    return None


def query_value(query: str, name: str) -> str | None:
    """The first value of `name` in a query string, or None."""
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key == name:
            return value
    return None
