"""The proxy package's public names are pinned."""

from __future__ import annotations

import proxy


def test_public_api() -> None:
    assert proxy.__all__ == [
        "Cluster",
        "Gateway",
        "InvalidStreamIdError",
        "Membership",
        "NoNodeError",
        "NodeUnavailableError",
        "ProxyConfig",
        "ProxyConfigError",
        "ProxyError",
        "RunningProxy",
        "StreamRecord",
        "StreamRegistry",
        "create_app",
        "serve",
        "serving",
    ]
    for name in proxy.__all__:
        assert getattr(proxy, name) is not None


def test_one_exception_root() -> None:
    for name in ("InvalidStreamIdError", "NoNodeError", "NodeUnavailableError",
                 "ProxyConfigError"):  # fmt: skip
        assert issubclass(getattr(proxy, name), proxy.ProxyError)
