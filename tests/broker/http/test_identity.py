"""Identity tokens: configuration, and every way a token is refused (401, a clear message that
never holds the token), with keys made at test time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from broker.errors import ConfigError
from broker.http.errors import HttpError
from broker.http.identity import KeyNotCachedError, TokenRejectedError, TokenVerifier
from broker.http.jwt_config import JwtConfig
from tests.support.jwks_server import jwks_server
from tests.support.tokens import SECRET, KeyPair, hs_config, hs_token, jwks

pytestmark = pytest.mark.timeout(20)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(payload).encode())}."


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenRejectedError) as caught:
        verifier.verify_now(token)
    assert caught.value.status == 401
    assert len(token) < 8 or token not in caught.value.message
    for part in token.split("."):
        if len(part) > 8:
            assert part not in caught.value.message
    return caught.value.message


# -- configuration ---------------------------------------------------------------------------
def test_no_key_means_auth_off_and_stray_settings_are_refused() -> None:
    assert not JwtConfig().enabled
    assert not JwtConfig.from_env({}).enabled
    with pytest.raises(ConfigError, match="without a key"):
        JwtConfig.from_env({"SKIFF_JWT_AUDIENCE": "skiff"})


def test_the_algorithm_family_follows_the_key() -> None:
    assert hs_config().algorithms == ("HS256",)
    assert JwtConfig(jwks_url="https://idp.example/jwks").algorithms == ("RS256",)
    for bad in ("none", "RS256"):
        with pytest.raises(ConfigError, match="cannot be used with a shared secret"):
            hs_config(algorithms=(bad,))
    with pytest.raises(ConfigError, match="cannot be used with public keys"):
        JwtConfig(jwks_url="https://idp.example/jwks", algorithms=("HS256",))
    with pytest.raises(ConfigError, match="one of"):
        JwtConfig(secret=SECRET, jwks_url="https://idp.example/jwks")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        JwtConfig(secret="short")


def test_from_env_reads_every_setting_and_flags_win(tmp_path: Path) -> None:
    env = {
        "SKIFF_JWKS_URL": "https://idp.example/jwks",
        "SKIFF_JWT_ALGORITHMS": "RS256, ES256",
        "SKIFF_JWT_AUDIENCE": "skiff",
        "SKIFF_JWT_ISSUER": "https://idp.example",
    }
    config = JwtConfig.from_env(env)
    assert config.algorithms == ("RS256", "ES256") and config.audience == "skiff"
    assert JwtConfig.from_env(env, audience="other", algorithms=None).audience == "other"
    with pytest.raises(ConfigError, match="only"):
        JwtConfig.from_env(env, secret="x" * 40)
    secret = JwtConfig.from_env({"SKIFF_JWT_SECRET": SECRET})
    assert SECRET not in repr(secret)


# -- HS256 -----------------------------------------------------------------------------------
def test_a_valid_token_gives_its_subject_and_claims() -> None:
    verifier = TokenVerifier(hs_config())
    identity = verifier.verify_now(hs_token("alice", skiff={"write": ["upvotes"]}))
    assert identity.subject == "alice"
    assert identity.claims["skiff"] == {"write": ["upvotes"]}
    assert identity.expires_at > time.time()
    assert identity.may_write("upvotes") and not identity.may_write("posts")


def test_forged_garbage_none_and_wrong_claims_are_refused() -> None:
    verifier = TokenVerifier(hs_config(audience="skiff", issuer="https://idp"))
    good = {"aud": "skiff", "iss": "https://idp"}
    assert verifier.verify_now(hs_token(**good)).subject == "alice"
    now = int(time.time())
    cases = {
        hs_token(key="another-secret-another-secret-0123456", **good): "bad signature",
        unsigned({"sub": "alice", "exp": now + 60, **good}): "algorithm not allowed",
        unsigned({"sub": "alice", "exp": now + 60, **good}, "HS512"): "algorithm not allowed",
        hs_token(exp=now - 120, **good): "expired",
        hs_token(nbf=now + 120, **good): "not yet valid",
        hs_token(aud="other", iss="https://idp"): "audience not accepted",
        hs_token(aud="skiff", iss="https://evil"): "issuer not accepted",
        jwt.encode({"sub": "alice", **good}, SECRET, algorithm="HS256"): "no 'exp' claim",
        jwt.encode({"exp": now + 60, **good}, SECRET, algorithm="HS256"): "no 'sub' claim",
        hs_token(sub="", **good): "'sub' must be a non-empty string",
        "garbage": "malformed",
        "a.b.c": "malformed",
        "": "malformed",
        "x" * 20_000: "malformed",
        hs_token(**good)[:-4] + "AAAA": "bad signature",
    }
    for token, reason in cases.items():
        assert refused(verifier, token) == f"invalid token: {reason}", token[:40]


def test_the_clock_skew_is_the_configured_leeway() -> None:
    verifier = TokenVerifier(hs_config())
    now = int(time.time())
    assert verifier.verify_now(hs_token(exp=now - 10)).subject == "alice"
    assert refused(verifier, hs_token(exp=now - 40)) == "invalid token: expired"
    strict = TokenVerifier(hs_config(leeway_s=0))
    assert refused(strict, hs_token(exp=now - 2)) == "invalid token: expired"


# -- public keys -----------------------------------------------------------------------------
def test_rs256_and_es256_from_a_pem_file(tmp_path: Path) -> None:
    rsa_pair, ec_pair = KeyPair("RSA"), KeyPair("EC")
    rs = TokenVerifier(JwtConfig(public_key_file=rsa_pair.write_pem(tmp_path / "rsa.pem")))
    assert rs.verify_now(rsa_pair.token("bob")).subject == "bob"
    assert refused(rs, KeyPair("RSA").token()) == "invalid token: bad signature"
    es = TokenVerifier(
        JwtConfig(public_key_file=ec_pair.write_pem(tmp_path / "ec.pem"), algorithms=("ES256",))
    )
    assert es.verify_now(ec_pair.token("carol")).subject == "carol"
    # An RS256 token is not even looked at by an ES256 verifier, nor the reverse.
    assert refused(es, rsa_pair.token()) == "invalid token: algorithm not allowed"
    with pytest.raises(ConfigError, match="no public key usable"):
        TokenVerifier(JwtConfig(public_key_file=str(tmp_path / "ec.pem"), algorithms=("RS256",)))


def test_hs_rs_confusion_is_refused(tmp_path: Path) -> None:
    pair = KeyPair("RSA")
    verifier = TokenVerifier(JwtConfig(public_key_file=pair.write_pem(tmp_path / "rsa.pem")))
    # The classic attack: an HS256 token whose secret is the server's public key.
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": "mallory", "exp": int(time.time()) + 60}).encode())
    mac = hmac.new(pair.public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{_b64(mac)}"
    assert refused(verifier, forged) == "invalid token: algorithm not allowed"


def test_a_jwks_file_selects_the_key_by_kid(tmp_path: Path) -> None:
    one, two = KeyPair("RSA", kid="k1"), KeyPair("EC", kid="k2")
    path = tmp_path / "jwks.json"
    document = jwks(one, two)
    # An HMAC key in the set must never become a secret; an encryption key is ignored.
    document["keys"] += [{"kty": "oct", "k": _b64(b"x" * 32), "kid": "k3"}]
    path.write_text(json.dumps(document))
    verifier = TokenVerifier(JwtConfig(public_key_file=str(path), algorithms=("RS256", "ES256")))
    assert verifier.verify_now(one.token("a")).subject == "a"
    assert verifier.verify_now(two.token("b")).subject == "b"
    forged = jwt.encode(
        {"sub": "m", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256",
        headers={"kid": "k3"},
    )  # fmt: skip
    assert refused(verifier, forged) == "invalid token: algorithm not allowed"
    stranger = KeyPair("RSA", kid="k9").token()
    assert refused(verifier, stranger) == "invalid token: unknown signing key"
    # k2 is an EC key: a token claiming RS256 with its kid is refused.
    wrong = jwt.encode(
        {"sub": "m", "exp": int(time.time()) + 60}, one.private, algorithm="RS256",
        headers={"kid": "k2"},
    )  # fmt: skip
    assert refused(verifier, wrong) == "invalid token: algorithm not allowed"


# -- JWKS URL --------------------------------------------------------------------------------
async def test_a_jwks_url_is_fetched_cached_and_refreshed_on_an_unknown_kid() -> None:
    old, new = KeyPair("RSA", kid="old"), KeyPair("RSA", kid="new")
    async with jwks_server(jwks(old)) as server:
        config = JwtConfig(jwks_url=server.url, jwks_refresh_s=0.2)
        verifier = TokenVerifier(config)
        with pytest.raises(KeyNotCachedError):
            verifier.verify_now(old.token())
        assert (await verifier.verify(old.token("alice"))).subject == "alice"
        assert verifier.verify_now(old.token("bob")).subject == "bob"
        assert server.fetches == 1
        # The provider rotates its keys: the unknown kid fetches the document again.
        server.document = jwks(old, new)
        await asyncio.sleep(0.25)
        assert (await verifier.verify(new.token("carol"))).subject == "carol"
        assert server.fetches == 2
        # Garbage kids do not turn into a flood of fetches: one per refresh interval.
        stranger = KeyPair("RSA", kid="nope").token()
        for _ in range(20):
            with pytest.raises(TokenRejectedError, match="unknown signing key"):
                await verifier.verify(stranger)
        assert server.fetches <= 3


async def test_an_unreachable_jwks_url_is_a_503_then_the_cached_keys_stay() -> None:
    pair = KeyPair("RSA", kid="k")
    async with jwks_server(jwks(pair)) as server:
        server.document = None
        verifier = TokenVerifier(JwtConfig(jwks_url=server.url, jwks_refresh_s=0.1))
        with pytest.raises(HttpError) as caught:
            await verifier.verify(pair.token())
        assert caught.value.status == 503
        server.document = jwks(pair)
        await asyncio.sleep(0.15)
        assert (await verifier.verify(pair.token())).subject == "alice"
        # The provider fails: an unknown kid tries it, and the keys known still verify.
        server.document = None
        await asyncio.sleep(0.15)
        with pytest.raises(TokenRejectedError, match="unknown signing key"):
            await verifier.verify(KeyPair("RSA", kid="other").token())
        assert (await verifier.verify(pair.token("bob"))).subject == "bob"
