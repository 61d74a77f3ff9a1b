"""`skiff` without its connection guard: the "limits off" baseline of bench/limits_bench.py.

    .venv/bin/python -m bench.limits_off proxy --redis ... --stream-rate 0 --write-rate 0

The same command line as `skiff`, but every HTTP connection is served as before issue 16:
uvicorn's own httptools protocol (no head deadline, no per-address cap) wherever skiff would
use GuardedHttpToolsProtocol, and a node's NodeConnection admitted by a guard that times and
counts nothing. The rate limits have their own switch (`--stream-rate 0 --write-rate 0`);
the guard has none, as a server open to clients should not run without it, so the benchmark
builds its baseline here rather than in the product.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from broker.http import guarded_protocol
from broker.serving import connection, server
from proxy import server as proxy_server
from skiff.cli import main as skiff_main


class _Unguarded(guarded_protocol.Admission):
    """An admission with no deadline and no slot."""

    __slots__ = ()

    def arm(self) -> None:
        pass

    def disarm(self) -> None:
        pass

    def release(self) -> None:
        pass


class UnguardedConnections(guarded_protocol.ConnectionGuard):
    """A ConnectionGuard that admits every connection and times nothing."""

    __slots__ = ()

    def admit(self, transport: asyncio.BaseTransport) -> guarded_protocol.Admission | None:
        return _Unguarded(self, transport, None)


def plain_protocol(
    config: Config,
    server_state: ServerState,
    app_state: dict[str, Any],
    _loop: asyncio.AbstractEventLoop | None = None,
    **guarded: Any,
) -> HttpToolsProtocol:
    """uvicorn's protocol, called as GuardedHttpToolsProtocol is (its guard ignored)."""
    return HttpToolsProtocol(config, server_state, app_state, _loop)


def unguard() -> None:
    """Replace the guard where skiff's servers and a node's connections take it from."""
    replaced: dict[str, Any] = {
        "ConnectionGuard": UnguardedConnections,
        "GuardedHttpToolsProtocol": plain_protocol,
    }
    for module in (server, proxy_server, connection):
        for name, value in replaced.items():
            if hasattr(module, name):
                setattr(module, name, value)


if __name__ == "__main__":
    unguard()
    sys.exit(skiff_main(sys.argv[1:]))
