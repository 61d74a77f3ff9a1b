"""How a `skiff` server command runs: its log lines configured, its port checked, the process's
open-files limit raised, then its main coroutine on asyncio's standard event loop.

Not uvloop, although it makes socket-heavy loops cheaper: a write to a transport that has just
closed raises RuntimeError there (MagicStack/uvloop#506) where asyncio's loop ignores it, and
redis-py does not expect that — under the chaos suite's Redis restarts, nodes on uvloop failed
where the same nodes on asyncio recovered. The fan-out and idle-stream figures of
docs/benchmarks.md are met on the standard loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

from broker.errors import BrokerError
from broker.runtime.fd_limit import raise_open_files_limit

_T = TypeVar("_T")

logger = logging.getLogger("skiff.broker")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def configure_logging(level: str) -> None:
    """skiff's own lines (`skiff.*` loggers) at `level`, one per line with time and origin."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO (a follower forwarding writes, the proxy's clients):
    # that is the access log's job.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))


def ensure_can_listen(host: str, port: int, hint: str = "") -> None:
    """Fail at once, in one line, when `host:port` is taken (a node that waits for its leader
    before listening would otherwise find out late). `hint` says how to choose another port."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The same option the servers bind with: a port left in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            reason = f"cannot listen on {host}:{port}: {err}"
            raise BrokerError(reason + (f"; {hint}" if hint else "")) from err


def run_server(main: Coroutine[Any, Any, _T]) -> _T:
    limit = raise_open_files_limit()
    logger.debug("open-files limit %d", limit)
    return asyncio.run(main)
