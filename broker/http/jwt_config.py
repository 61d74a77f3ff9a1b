"""JwtConfig: how a node or the proxy verifies identity tokens (docs/security.md, "Per-user auth").

One of three key sources turns verification on: a shared secret (HS256), a PEM public key or a
JWKS document in a file, or a JWKS URL (RS256/ES256). With none, auth is off and nothing else
here may be set: a deployment that names an audience but forgot the key has not turned auth on
by accident, it is refused. The accepted algorithms are pinned here, never read from a token,
and one family only (HMAC or public-key): a public key can then never serve as an HMAC secret,
and `none` is not an algorithm at all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from broker.errors import ConfigError

HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}
)
#: RFC 7518 §3.2: an HMAC key at least as long as the hash; 32 bytes for HS256.
MIN_SECRET_BYTES: Final = 32
#: The clock skew allowed on `exp` and `nbf`, in seconds (stated in docs/security.md).
DEFAULT_LEEWAY_S: Final = 30.0

#: The environment variables, one per field (the secret is read from the environment only).
ENV: Final = {
    "secret": "SKIFF_JWT_SECRET",
    "public_key_file": "SKIFF_JWT_PUBLIC_KEY_FILE",
    "jwks_url": "SKIFF_JWKS_URL",
    "algorithms": "SKIFF_JWT_ALGORITHMS",
    "audience": "SKIFF_JWT_AUDIENCE",
    "issuer": "SKIFF_JWT_ISSUER",
}


@dataclass(frozen=True, slots=True)
class JwtConfig:
    """Identity-token verification; all None (the default) means auth is off."""

    # Out of the repr: a logged config must not leak the secret.
    secret: str | None = field(default=None, repr=False)
    public_key_file: str | None = None
    jwks_url: str | None = None
    #: Accepted `alg` values; empty means HS256 for a secret, RS256 for public keys.
    algorithms: tuple[str, ...] = ()
    audience: str | None = None
    issuer: str | None = None
    leeway_s: float = DEFAULT_LEEWAY_S
    #: A JWKS document is fetched at most once per this many seconds (an unknown `kid`
    #: triggers a fetch; garbage tokens must not turn into a flood of them).
    jwks_refresh_s: float = 30.0
    jwks_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        sources = [s for s in (self.secret, self.public_key_file, self.jwks_url) if s]
        if len(sources) > 1:
            raise ConfigError(
                "set one of SKIFF_JWT_SECRET, SKIFF_JWT_PUBLIC_KEY_FILE, SKIFF_JWKS_URL"
            )
        if not sources:
            if self.algorithms or self.audience or self.issuer:
                raise ConfigError(
                    "JWT settings without a key: set SKIFF_JWT_SECRET, "
                    "SKIFF_JWT_PUBLIC_KEY_FILE or SKIFF_JWKS_URL (or none of them)"
                )
            return
        hmac = self.secret is not None
        algorithms = self.algorithms or (("HS256",) if hmac else ("RS256",))
        allowed = HMAC_ALGORITHMS if hmac else PUBLIC_KEY_ALGORITHMS
        for name in algorithms:
            if name not in allowed:
                kind = "a shared secret" if hmac else "public keys"
                raise ConfigError(
                    f"JWT algorithm {name!r} cannot be used with {kind} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
        object.__setattr__(self, "algorithms", tuple(algorithms))
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"SKIFF_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.jwks_url is not None and not self.jwks_url.startswith(("https://", "http://")):
            raise ConfigError("SKIFF_JWKS_URL must be an http(s) URL")
        for name in ("leeway_s", "jwks_refresh_s", "jwks_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "leeway_s"):
                raise ConfigError(f"{name} is out of range: {value!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.public_key_file or self.jwks_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> JwtConfig:
        """The settings of the environment, with `flags` (the command line's, None when not
        given) taking precedence. The secret is never a flag: `ps` shows command lines."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variable in ENV.items():
            flag = flags.get(name)
            values[name] = flag if flag is not None else (env.get(variable) or None)
        if "secret" in flags:
            raise ConfigError("the JWT secret comes from SKIFF_JWT_SECRET only")
        algorithms = values.pop("algorithms")
        if isinstance(algorithms, str):
            algorithms = tuple(a.strip() for a in algorithms.split(",") if a.strip())
        return cls(**values, algorithms=tuple(algorithms or ()))
