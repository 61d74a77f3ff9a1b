"""The example app's login: `POST /demo/login {"user": "alice"}` answers a signed token.

For `make dev` only. It is on when the proxy has `SKIFF_DEMO_SIGNING_KEY` (the same key as
`SKIFF_JWT_SECRET`, so the proxy and the nodes accept what it signs) and answers 404 otherwise:
anyone who reaches it gets a token for any user name, with no password, which is exactly what a
demo of per-user streams needs and what a production deployment must never have. There, the
application's own login (or an identity provider) issues the tokens.

The token: HS256, `sub` the user, `exp` five minutes on (the page fetches a fresh one before
then; an open stream ends when its token expires), `aud`/`iss` as the proxy is configured, and
the scope to write the example's `posts` and `upvotes`.
"""

from __future__ import annotations

import re
import time
from typing import Final

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.http.bodies import read_json
from broker.http.errors import HttpError
from broker.http.identity import SCOPE_CLAIM
from proxy.config import ProxyConfig

TOKEN_TTL_S: Final = 300
_USER: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: What a demo user may write: the example service's inputs the page writes.
WRITES: Final = ("posts", "upvotes")


def issue(config: ProxyConfig, user: str, now: float | None = None) -> tuple[str, int]:
    """A token for `user` signed with the demo key, and its expiry (seconds since the epoch)."""
    if config.demo_signing_key is None:
        raise HttpError(404, "the demo login is off")
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "sub": user,
        "iat": issued,
        "exp": issued + TOKEN_TTL_S,
        SCOPE_CLAIM: {"write": list(WRITES)},
    }
    if config.jwt.audience is not None:
        claims["aud"] = config.jwt.audience
    if config.jwt.issuer is not None:
        claims["iss"] = config.jwt.issuer
    token = jwt.encode(claims, config.demo_signing_key, algorithm="HS256")
    return token, issued + TOKEN_TTL_S


def demo_login_route(config: ProxyConfig) -> Route:
    async def login(request: Request) -> Response:
        if config.demo_signing_key is None:
            raise HttpError(404, "the demo login is off")
        body = await read_json(request, 1024)
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise HttpError(400, 'the body must be {"user": "<lowercase name>"}')
        token, expires = issue(config, user)
        # Not cached anywhere: a token is a credential.
        return JSONResponse(
            {"user": user, "token": token, "expires_at": expires},
            headers={"Cache-Control": "no-store"},
        )

    return Route("/demo/login", login, methods=["POST"])
