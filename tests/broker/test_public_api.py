"""The public names of the broker package are pinned: changing them is a decision."""

from __future__ import annotations

import pytest

import broker

pytestmark = pytest.mark.timeout(10)


def test_all_is_pinned() -> None:
    assert sorted(broker.__all__) == [
        "BrokerError",
        "ClientError",
        "ConfigError",
        "DrainingError",
        "HttpError",
        "Hub",
        "Init",
        "RunningNode",
        "ServeConfig",
        "ServiceLoadError",
        "SkiffClient",
        "StreamDisconnectedError",
        "StreamEvent",
        "StreamNotFoundError",
        "StreamProtocolError",
        "Subscription",
        "UnknownStreamError",
        "Update",
        "create_app",
        "load_service",
        "new_run_id",
        "running",
        "serve",
    ]
    for name in broker.__all__:
        assert hasattr(broker, name)


def test_every_error_derives_from_broker_error() -> None:
    for name in broker.__all__:
        value = getattr(broker, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, broker.BrokerError), name
