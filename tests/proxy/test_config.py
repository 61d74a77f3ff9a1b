"""ProxyConfig: validated on construction, the token never in its repr, secrets from the env."""

from __future__ import annotations

from typing import Any

import pytest

from proxy import ProxyConfig, ProxyConfigError

pytestmark = pytest.mark.timeout(10)

URL = "redis://127.0.0.1:6379/0"


def test_defaults() -> None:
    config = ProxyConfig(redis_url=URL)
    assert (config.port, config.service, config.cors_origins) == (8080, None, ())
    assert config.stream_ttl_ms == 60_000


def test_token_is_never_in_the_repr() -> None:
    config = ProxyConfig(redis_url=URL, control_token="s3cret-token")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)


@pytest.mark.parametrize(
    "options",
    [
        {"redis_url": "http://x"},
        {"service": "a b"},
        {"service": "a{b}"},
        {"port": 70000},
        {"port": True},
        {"control_token": "  "},
        {"max_body_bytes": 0},
        {"cors_origins": ("example.com",)},
        {"poll_interval_s": 0},
        {"stream_ttl_s": float("nan")},
        {"stream_ttl_s": 0.1},  # shorter than 3 polls
        {"leader_wait_s": -1},
        {"shutdown_timeout_s": -1},
    ],
)
def test_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ProxyConfigError):
        ProxyConfig(**{"redis_url": URL, **options})


def test_rejected_url_is_not_echoed() -> None:
    with pytest.raises(ProxyConfigError) as info:
        ProxyConfig(redis_url="http://user:hunter2@host")
    assert "hunter2" not in str(info.value)


def test_from_env() -> None:
    env = {"SKIFF_CONTROL_TOKEN": "tok", "SKIFF_CORS_ORIGINS": "https://a.example, http://b:3000"}
    config = ProxyConfig.from_env(URL, environ=env, port=9000)
    assert config.control_token == "tok"
    assert config.cors_origins == ("https://a.example", "http://b:3000")
    assert config.port == 9000
    assert ProxyConfig.from_env(URL, environ={}).control_token is None
    # An explicit option wins over the environment.
    assert ProxyConfig.from_env(URL, environ=env, cors_origins=("*",)).cors_origins == ("*",)
