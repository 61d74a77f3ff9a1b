"""Public keys of identity tokens: a PEM key or a JWKS document in a file, or a JWKS URL.

A JWKS URL is fetched on the first token that needs it and then kept; a token naming a `kid`
the cache does not hold triggers one more fetch (keys rotate), at most once per
`refresh_s` however many such tokens arrive, one fetch at a time, each bounded by `timeout_s`.
A failed fetch keeps the keys already known. Keys whose type or `alg` is not among the pinned
algorithms' family are left out on loading (an `oct` key in a JWKS is never an HMAC secret
here), as are keys marked for encryption (`"use": "enc"`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from broker.errors import ConfigError

logger = logging.getLogger("skiff.auth")

#: A JWKS document larger than this is refused (a key set is a few KB).
MAX_DOCUMENT_BYTES: Final = 256 * 1024


class PublicKey:
    """One verification key: the cryptography key object, its `kid` and, when the key says
    so, its algorithm."""

    __slots__ = ("algorithm", "key", "kid")

    def __init__(self, key: Any, kid: str | None, algorithm: str | None) -> None:
        self.key = key
        self.kid = kid
        self.algorithm = algorithm

    def accepts(self, algorithm: str) -> bool:
        """Whether this key may verify a signature made with `algorithm`."""
        if self.algorithm is not None and self.algorithm != algorithm:
            return False
        if algorithm.startswith("ES"):
            return isinstance(self.key, ec.EllipticCurvePublicKey)
        return isinstance(self.key, rsa.RSAPublicKey)


class KeySet:
    """Keys by `kid`; a token without a `kid` is verified with the only key when there is one."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys = list(keys)
        self._by_kid = {k.kid: k for k in self._keys if k.kid is not None}

    def find(self, kid: str | None) -> PublicKey | None:
        if kid is not None:
            return self._by_kid.get(kid)
        return self._keys[0] if len(self._keys) == 1 else None

    def __len__(self) -> int:
        return len(self._keys)


def parse_jwks(document: Any, algorithms: tuple[str, ...]) -> KeySet:
    """The usable public keys of a JWKS document (`{"keys": [...]}`) or of one JWK."""
    if isinstance(document, dict) and "keys" not in document and "kty" in document:
        document = {"keys": [document]}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError('a JWKS document is an object {"keys": [...]}')
    keys = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("kty") not in ("RSA", "EC"):
            continue
        try:
            parsed = PyJWK(jwk)
        except PyJWTError:
            continue  # RFC 7517 §5: a key that is not understood is ignored
        kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
        declared = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
        key = PublicKey(parsed.key, kid, declared)
        if any(key.accepts(name) for name in algorithms):
            keys.append(key)
    return KeySet(keys)


def load_key_file(path: str, algorithms: tuple[str, ...]) -> KeySet:
    """A PEM public key (`-----BEGIN PUBLIC KEY-----`) or a JWKS document, from a file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the JWT public key file {path}: {err}") from err
    if data.lstrip().startswith(b"{"):
        try:
            keys = parse_jwks(json.loads(data), algorithms)
        except ValueError as err:
            raise ConfigError(f"{path}: not a JWKS document ({err})") from err
    else:
        try:
            key = load_pem_public_key(data)
        except ValueError as err:
            raise ConfigError(f"{path}: not a PEM public key") from err
        keys = KeySet([PublicKey(key, None, None)])
    single = keys.find(None)
    if not len(keys) or (single is not None and not any(single.accepts(a) for a in algorithms)):
        raise ConfigError(f"{path}: no public key usable with {', '.join(algorithms)}")
    return keys


class JwksKeys:
    """The keys of a JWKS URL, fetched lazily and refreshed on an unknown `kid`."""

    def __init__(
        self,
        url: str,
        algorithms: tuple[str, ...],
        *,
        refresh_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._algorithms = algorithms
        self._refresh_s = refresh_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys = KeySet()
        self._fetched_at: float | None = None
        self._inflight: asyncio.Future[None] | None = None

    @property
    def loaded(self) -> bool:
        return self._fetched_at is not None and len(self._keys) > 0

    def cached(self, kid: str | None) -> PublicKey | None:
        return self._keys.find(kid)

    def may_fetch(self) -> bool:
        """Whether an unknown `kid` may fetch the document now (or must wait its turn)."""
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._refresh_s

    async def find(self, kid: str | None) -> PublicKey | None:
        """The key for `kid`, fetching the document once more if it may."""
        key = self._keys.find(kid)
        if key is None and self.may_fetch():
            await self.refresh()
            key = self._keys.find(kid)
        return key

    async def refresh(self) -> None:
        """Fetch the document (joining a fetch in flight); keeps the old keys on failure."""
        inflight = self._inflight
        loop = asyncio.get_running_loop()
        if inflight is None or inflight.done() or inflight.get_loop() is not loop:
            inflight = self._inflight = loop.create_task(self._fetch())
        await asyncio.shield(inflight)

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                reply = await client.get(self._url, headers={"Accept": "application/json"})
            if reply.status_code != 200:
                raise ValueError(f"status {reply.status_code}")
            if len(reply.content) > MAX_DOCUMENT_BYTES:
                raise ValueError("document too large")
            keys = parse_jwks(reply.json(), self._algorithms)
        except (httpx.HTTPError, ValueError, ConfigError) as err:
            logger.warning("cannot fetch the JWKS document at %s: %s", self._url, err)
            return
        if not len(keys):
            logger.warning("the JWKS document at %s holds no usable key", self._url)
            return
        self._keys = keys
