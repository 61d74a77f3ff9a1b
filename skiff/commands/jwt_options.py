"""The identity-token flags of the commands that serve clients (serve, leader, follower, proxy).

Each flag overrides its environment variable; the secret has no flag (`SKIFF_JWT_SECRET` only:
a command line shows in `ps`). With neither a flag nor a variable naming a key, auth is off.
"""

from __future__ import annotations

import argparse

from broker.http.jwt_config import DEFAULT_LEEWAY_S, JwtConfig


def add_jwt_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "identity tokens (docs/security.md; the HS256 secret: $SKIFF_JWT_SECRET only)"
    )
    group.add_argument(
        "--jwt-public-key-file",
        metavar="PATH",
        help="verify RS256/ES256 tokens with this PEM public key or JWKS document "
        "(default: $SKIFF_JWT_PUBLIC_KEY_FILE)",
    )
    group.add_argument(
        "--jwks-url",
        metavar="URL",
        help="verify RS256/ES256 tokens with the keys of this JWKS document, fetched and "
        "cached (default: $SKIFF_JWKS_URL)",
    )
    group.add_argument(
        "--jwt-algorithms",
        metavar="ALGS",
        help="accepted algorithms, comma-separated (default: $SKIFF_JWT_ALGORITHMS, else HS256 "
        "with a secret, RS256 with public keys)",
    )
    group.add_argument(
        "--jwt-audience", metavar="AUD", help="required `aud` (default: $SKIFF_JWT_AUDIENCE)"
    )
    group.add_argument(
        "--jwt-issuer", metavar="ISS", help="required `iss` (default: $SKIFF_JWT_ISSUER)"
    )
    group.add_argument(
        "--jwt-leeway",
        type=float,
        default=DEFAULT_LEEWAY_S,
        metavar="SECONDS",
        help=f"clock skew allowed on exp and nbf (default {DEFAULT_LEEWAY_S:g})",
    )


def jwt_config(args: argparse.Namespace) -> JwtConfig:
    """The JwtConfig of the environment and the flags (raises ConfigError)."""
    config = JwtConfig.from_env(
        public_key_file=args.jwt_public_key_file,
        jwks_url=args.jwks_url,
        algorithms=args.jwt_algorithms,
        audience=args.jwt_audience,
        issuer=args.jwt_issuer,
    )
    if not config.enabled or args.jwt_leeway == config.leeway_s:
        return config
    return JwtConfig(
        secret=config.secret,
        public_key_file=config.public_key_file,
        jwks_url=config.jwks_url,
        algorithms=config.algorithms,
        audience=config.audience,
        issuer=config.issuer,
        leeway_s=args.jwt_leeway,
    )
