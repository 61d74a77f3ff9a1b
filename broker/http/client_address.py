"""Client addresses: what a per-client limit counts by, and which peers may speak for others.

A limit per client address counts IPv6 clients by their /64 network: one host is routinely given
a whole /64, so counting single IPv6 addresses would let one machine look like 2^64 clients.
An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, a dual-stack socket) counts as the IPv4
address it is.

`TrustedForwarders` are the peers (load balancers, ingress proxies) whose `X-Forwarded-For`
names the real client. The default is none: the socket peer is the client.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final

from broker.errors import ConfigError

_IPV6_GROUP: Final = 64
#: Addresses whose keys are remembered (parsing one costs several microseconds, and every
#: admitted connection and every rate-limited request asks again).
_REMEMBERED: Final = 4096


class AddressError(ConfigError):
    """A trusted-forwarder entry is neither an address, a network nor `*`."""


@functools.lru_cache(maxsize=_REMEMBERED)
def address_key(host: str) -> str:
    """The key a per-address limit counts `host` under: the IPv4 address, or the IPv6 /64
    network (`2001:db8:1:2::/64`); a host that is not an IP address (a Unix socket's path, a
    test transport) is its own key."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _IPV6_GROUP), strict=False))
    return str(address)


class TrustedForwarders:
    """Peers whose `X-Forwarded-For` is believed: addresses, networks (`10.0.0.0/8`), or `*`
    (every peer: only when nothing but the forwarder can reach the port)."""

    __slots__ = ("_all", "_networks", "entries")

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(e.strip() for e in entries if e.strip())
        self._all = "*" in self.entries
        networks = []
        for entry in self.entries:
            if entry == "*":
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as err:
                raise AddressError(
                    f"a trusted forwarder is an IP address, a network or *, got {entry!r}"
                ) from err
        self._networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def trusts(self, host: str) -> bool:
        if self._all:
            return True
        if not self._networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)
