"""ServeConfig is validated on construction."""

from __future__ import annotations

from typing import Any

import pytest

from broker import ConfigError, ServeConfig

pytestmark = pytest.mark.timeout(10)


def test_defaults() -> None:
    config = ServeConfig()
    assert (config.port, config.control_port, config.split) == (8080, None, False)
    assert config.heartbeat_s == 30
    assert config.max_body_bytes == 1024 * 1024
    assert config.idle_instance_s == 30
    assert config.max_pending_updates <= config.max_lag_updates


def test_is_frozen() -> None:
    config = ServeConfig()
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"port": 0, "control_port": 0},
        {"port": 8000, "control_port": 8001},
        {"history_versions": 0},
        {"idle_instance_s": 0},
        {"max_pending_updates": 5, "max_lag_updates": 5},
        {"control_token": "s3cret"},
    ],
)
def test_accepts(overrides: dict[str, Any]) -> None:
    config = ServeConfig(**overrides)
    assert {name: getattr(config, name) for name in overrides} == overrides


@pytest.mark.parametrize(
    "overrides",
    [
        {"host": ""},
        {"port": -1},
        {"port": 65536},
        {"port": True},
        {"port": "80"},
        {"port": 8000, "control_port": 8000},
        {"control_port": 70000},
        {"heartbeat_s": 0},
        {"heartbeat_s": float("nan")},
        {"heartbeat_s": float("inf")},
        {"idle_instance_s": -1},
        {"max_body_bytes": 0},
        {"max_body_bytes": 1.5},
        {"history_versions": -1},
        {"max_pending_updates": 0},
        {"max_pending_updates": 10, "max_lag_updates": 9},
        {"send_timeout_s": 0},
        {"shutdown_timeout_s": -0.1},
        {"control_token": "  "},
    ],
)
def test_rejects(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ServeConfig(**overrides)
