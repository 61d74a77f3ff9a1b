"""The client limits of `skiff proxy` and the nodes: flags, variables and defaults reach the
configs (docs/security.md, "Client limits")."""

from __future__ import annotations

import pytest

from broker.store.rate_limit import RateLimit
from proxy.config import ProxyConfig
from skiff.cli import build_parser
from skiff.commands.options import serve_config
from skiff.commands.proxy import client_limits


def proxy_options(*argv: str) -> dict[str, object]:
    return client_limits(build_parser().parse_args(["proxy", "--redis", "redis://x", *argv]))


def test_defaults_are_the_configs() -> None:
    config = ProxyConfig(redis_url="redis://x", **proxy_options())  # type: ignore[arg-type]
    assert config == ProxyConfig(redis_url="redis://x")
    assert config.stream_rate == RateLimit(10, 300)
    assert config.write_rate == RateLimit(100, 1000)
    assert (config.header_timeout_s, config.max_connections_per_address) == (10.0, 1024)
    assert config.body_timeout_s == 30.0
    assert config.forwarded_allow_ips == ()


def test_flags_reach_the_proxy_config() -> None:
    options = proxy_options(
        "--header-timeout", "3", "--body-timeout", "9", "--max-connections-per-address", "0",
        "--forwarded-allow-ips", "10.0.0.0/8, 192.0.2.1", "--stream-rate", "0",
        "--write-rate", "5", "--write-burst", "7",
    )  # fmt: skip
    config = ProxyConfig(redis_url="redis://x", **options)  # type: ignore[arg-type]
    assert (config.header_timeout_s, config.body_timeout_s) == (3.0, 9.0)
    assert config.max_connections_per_address == 0
    assert config.forwarded_allow_ips == ("10.0.0.0/8", "192.0.2.1")
    assert config.stream_rate.off and config.stream_rate.burst == 300
    assert config.write_rate == RateLimit(5, 7)


def test_variables_are_the_flags_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SKIFF_HEADER_TIMEOUT": "4", "SKIFF_BODY_TIMEOUT": "12",
        "SKIFF_MAX_CONNECTIONS_PER_ADDRESS": "64",
        "SKIFF_FORWARDED_ALLOW_IPS": "*", "SKIFF_STREAM_RATE": "2", "SKIFF_STREAM_BURST": "20",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config = ProxyConfig(redis_url="redis://x", **proxy_options())  # type: ignore[arg-type]
    assert (config.header_timeout_s, config.max_connections_per_address) == (4.0, 64)
    assert config.body_timeout_s == 12.0
    assert config.forwarded_allow_ips == ("*",)
    assert config.stream_rate == RateLimit(2, 20)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(SystemExit, match="burst"):
        proxy_options("--stream-burst", "0")
    with pytest.raises(ValueError, match="trusted forwarder"):
        ProxyConfig(redis_url="redis://x", forwarded_allow_ips=("nope",))
    with pytest.raises(ValueError, match="header_timeout_s"):
        ProxyConfig(redis_url="redis://x", header_timeout_s=0)
    with pytest.raises(ValueError, match="body_timeout_s"):
        ProxyConfig(redis_url="redis://x", body_timeout_s=-1)


def test_node_flags() -> None:
    args = build_parser().parse_args(
        ["serve", "m:s", "--header-timeout", "2.5", "--max-connections-per-address", "100",
         "--body-timeout", "7"]
    )  # fmt: skip
    config = serve_config(args)
    assert (config.header_timeout_s, config.max_connections_per_address) == (2.5, 100)
    assert config.body_timeout_s == 7.0
