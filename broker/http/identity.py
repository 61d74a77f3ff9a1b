"""Identity tokens (JWT): verified the same way at every node and at the proxy.

A token is accepted when, in this order: it is at most 8 KiB of JWS compact form; its header's
`alg` is one of the configured algorithms (so `none`, and an HS256 token against public keys,
are refused before any key is looked at); its signature verifies with the configured key (the
secret, the key file's key, or the JWKS key its `kid` names); it has `exp` and a non-empty
string `sub`; `exp`, `nbf` (and `iat`) hold within the configured leeway (30 s by default); and
`aud` / `iss` are the configured ones when configured. The identity is `sub`, and the verified
claims travel with it to the resources (graph/claims.py).

Every refusal is a 401 whose message says what was wrong and never echoes the token (nor
chains PyJWT's exception, whose text may quote the token's parts).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import jwt
from jwt import exceptions as jwt_errors

from broker.errors import BrokerError
from broker.http.errors import HttpError
from broker.http.jwks import JwksKeys, KeySet, PublicKey, load_key_file
from broker.http.jwt_config import JwtConfig

#: Longer than any sensible token (a few hundred bytes to a few KB); beyond, refused unparsed.
MAX_TOKEN_BYTES: Final = 8 * 1024
#: The claim granting writes: `{"skiff": {"write": ["upvotes", ...]}}`, or `["*"]` for all.
SCOPE_CLAIM: Final = "skiff"


class TokenRejectedError(HttpError):
    """An identity token was presented and is not valid (HTTP 401)."""

    def __init__(self, reason: str) -> None:
        super().__init__(401, f"invalid token: {reason}")


class KeyNotCachedError(BrokerError):
    """Verifying this token needs a JWKS fetch: not possible synchronously (NodeConnection
    then hands the request to the ASGI path, which may await it)."""


@dataclass(frozen=True, slots=True, eq=False)
class Identity:
    """A verified token's subject and claims. `expires_at`: its `exp`, seconds since the epoch."""

    subject: str
    claims: Mapping[str, Any]
    expires_at: float

    def may_write(self, collection: str) -> bool:
        """Whether the token's scope claim grants writing `collection`."""
        scope = self.claims.get(SCOPE_CLAIM)
        granted = scope.get("write") if isinstance(scope, Mapping) else None
        return isinstance(granted, list) and ("*" in granted or collection in granted)


class TokenVerifier:
    """Verifies tokens against one JwtConfig (which must be enabled)."""

    def __init__(self, config: JwtConfig) -> None:
        if not config.enabled:
            raise BrokerError("a TokenVerifier needs a JwtConfig with a key")
        self.config = config
        self._secret = config.secret.encode() if config.secret is not None else None
        self._file_keys: KeySet | None = None
        self._jwks: JwksKeys | None = None
        if config.public_key_file is not None:
            self._file_keys = load_key_file(config.public_key_file, config.algorithms)
        elif config.jwks_url is not None:
            self._jwks = JwksKeys(
                config.jwks_url,
                config.algorithms,
                refresh_s=config.jwks_refresh_s,
                timeout_s=config.jwks_timeout_s,
            )

    def verify_now(self, token: str) -> Identity:
        """Verify with the keys at hand. Raises TokenRejectedError, or KeyNotCachedError when
        only a JWKS fetch could tell."""
        algorithm, kid = self._header(token)
        if self._jwks is not None:
            key = self._jwks.cached(kid)
            if key is None and self._jwks.may_fetch():
                raise KeyNotCachedError("the token's key is not cached")
            return self._decode(token, algorithm, self._key(key, algorithm))
        return self._decode(token, algorithm, self._static_key(kid, algorithm))

    async def verify(self, token: str) -> Identity:
        """Verify, fetching the JWKS document when the token names a key not yet known."""
        algorithm, kid = self._header(token)
        if self._jwks is not None:
            key = await self._jwks.find(kid)
            if key is None and not self._jwks.loaded:
                raise HttpError(503, "the identity provider's keys cannot be fetched")
            return self._decode(token, algorithm, self._key(key, algorithm))
        return self._decode(token, algorithm, self._static_key(kid, algorithm))

    # -- internals -------------------------------------------------------------------------
    def _header(self, token: str) -> tuple[str, str | None]:
        if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise TokenRejectedError("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise TokenRejectedError("malformed") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.config.algorithms:
            raise TokenRejectedError("algorithm not allowed")
        kid = header.get("kid")
        return algorithm, kid if isinstance(kid, str) else None

    def _static_key(self, kid: str | None, algorithm: str) -> Any:
        if self._secret is not None:
            return self._secret
        assert self._file_keys is not None
        return self._key(self._file_keys.find(kid), algorithm)

    @staticmethod
    def _key(key: PublicKey | None, algorithm: str) -> Any:
        if key is None:
            raise TokenRejectedError("unknown signing key")
        if not key.accepts(algorithm):
            raise TokenRejectedError("algorithm not allowed")
        return key.key

    def _decode(self, token: str, algorithm: str, key: Any) -> Identity:
        config = self.config
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": config.audience is not None},
            )
        except jwt_errors.ExpiredSignatureError:
            raise TokenRejectedError("expired") from None
        except jwt_errors.ImmatureSignatureError:
            raise TokenRejectedError("not yet valid") from None
        except jwt_errors.InvalidAudienceError:
            raise TokenRejectedError("audience not accepted") from None
        except jwt_errors.InvalidIssuerError:
            raise TokenRejectedError("issuer not accepted") from None
        except jwt_errors.MissingRequiredClaimError as err:
            raise TokenRejectedError(f"no {err.claim!r} claim") from None
        except (jwt_errors.InvalidSignatureError, jwt_errors.InvalidKeyError):
            raise TokenRejectedError("bad signature") from None
        except jwt_errors.InvalidAlgorithmError:
            raise TokenRejectedError("algorithm not allowed") from None
        except jwt_errors.PyJWTError:
            raise TokenRejectedError("malformed") from None
        subject, expires = claims.get("sub"), claims.get("exp")
        if not isinstance(subject, str) or not subject:
            raise TokenRejectedError("'sub' must be a non-empty string")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise TokenRejectedError("'exp' must be a number")
        return Identity(subject, MappingProxyType(claims), float(expires))


@functools.lru_cache(maxsize=16)
def verifier_for(config: JwtConfig) -> TokenVerifier:
    """The verifier of `config`, one per process: every app of a node (and the gated copy a
    leader routes reads through) shares its JWKS cache."""
    return TokenVerifier(config)
