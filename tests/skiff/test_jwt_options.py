"""The identity-token flags of serve/leader/follower/proxy: flags over the environment, and no
flag for the secret."""

from __future__ import annotations

import pytest

from broker.errors import ConfigError
from skiff.cli import build_parser
from skiff.commands.options import serve_config
from skiff.commands.proxy import COMMAND as PROXY
from tests.support.tokens import SECRET

pytestmark = pytest.mark.timeout(10)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_JWT_SECRET", SECRET)
    monkeypatch.setenv("SKIFF_JWT_AUDIENCE", "from-env")
    args = build_parser().parse_args(
        ["serve", "examples.hackernews:service", "--jwt-audience", "from-flag",
         "--jwt-issuer", "https://idp", "--jwt-leeway", "5"]
    )  # fmt: skip
    config = serve_config(args).jwt
    assert config.enabled and config.algorithms == ("HS256",)
    assert (config.audience, config.issuer, config.leeway_s) == ("from-flag", "https://idp", 5)
    assert SECRET not in repr(serve_config(args))


def test_auth_is_off_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SKIFF_JWT_SECRET", "SKIFF_JWKS_URL", "SKIFF_JWT_PUBLIC_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    args = build_parser().parse_args(["leader", "examples.hackernews:service"])
    assert not serve_config(args).jwt.enabled
    bad = build_parser().parse_args(
        ["follower", "examples.hackernews:service", "--jwt-audience", "x"]
    )
    with pytest.raises(ConfigError, match="without a key"):
        serve_config(bad)


def test_there_is_no_secret_flag() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["proxy", "--jwt-secret", SECRET])
    args = build_parser().parse_args(["proxy", "--jwks-url", "https://idp/jwks"])
    assert args.jwks_url == "https://idp/jwks" and PROXY.name == "proxy"
