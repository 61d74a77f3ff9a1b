"""What a per-address limit counts by, and which peers may name the client."""

from __future__ import annotations

import pytest

from broker.errors import ConfigError
from broker.http.client_address import TrustedForwarders, address_key


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("::1", "::/64"),
        ("/run/skiff.sock", "/run/skiff.sock"),
        ("unknown", "unknown"),
    ],
)
def test_address_keys(host: str, key: str) -> None:
    assert address_key(host) == key


def test_trusted_forwarders() -> None:
    none = TrustedForwarders()
    assert not none and not none.trusts("127.0.0.1")
    some = TrustedForwarders(["10.0.0.0/8", " 192.0.2.1 ", "", "2001:db8::/32"])
    assert some.entries == ("10.0.0.0/8", "192.0.2.1", "2001:db8::/32")
    assert some.trusts("10.1.2.3") and some.trusts("192.0.2.1") and some.trusts("2001:db8::9")
    assert some.trusts("::ffff:10.0.0.1")
    assert not some.trusts("192.0.2.2") and not some.trusts("not an address")
    assert TrustedForwarders(["*"]).trusts("198.51.100.9")


def test_a_bad_forwarder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trusted forwarder"):
        TrustedForwarders(["10.0.0.0/33"])
