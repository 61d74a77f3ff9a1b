"""Identity tokens for tests: keys made at test time (never committed), tokens signed with them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.http.jwt_config import JwtConfig

#: A shared secret for HS256 (32 bytes or more, as JwtConfig requires).
SECRET = "test-secret-test-secret-test-secret-0123"


def hs_config(**overrides: Any) -> JwtConfig:
    return JwtConfig(secret=SECRET, **overrides)


def claims(sub: str = "alice", *, ttl_s: float = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl_s, **extra}


def hs_token(sub: str = "alice", *, key: str = SECRET, **extra: Any) -> str:
    """An HS256 token for `sub`; `extra` claims override the defaults (exp, iat, ...)."""
    return jwt.encode({**claims(sub), **extra}, key, algorithm="HS256")


def writer(sub: str, *collections: str, **extra: Any) -> str:
    """An HS256 token that may write `collections`."""
    return hs_token(sub, skiff={"write": list(collections)}, **extra)


class KeyPair:
    """A private key of the tests and its public half as PEM and as a JWK."""

    def __init__(self, kind: str = "RSA", kid: str | None = None) -> None:
        self.kind = kind
        self.kid = kid
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = "RS256"
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = "ES256"
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.kind == "RSA":
            text = jwt.algorithms.RSAAlgorithm.to_jwk(public)
        else:
            text = jwt.algorithms.ECAlgorithm.to_jwk(public)
        data: dict[str, Any] = json.loads(text)
        data["use"] = "sig"
        if self.kid is not None:
            data["kid"] = self.kid
        return data

    def token(self, sub: str = "alice", **extra: Any) -> str:
        headers = {"kid": self.kid} if self.kid is not None else None
        return jwt.encode(
            {**claims(sub), **extra}, self.private, algorithm=self.algorithm, headers=headers
        )

    def write_pem(self, path: Path) -> str:
        path.write_bytes(self.public_pem)
        return str(path)


def jwks(*pairs: KeyPair) -> dict[str, Any]:
    return {"keys": [pair.jwk() for pair in pairs]}
