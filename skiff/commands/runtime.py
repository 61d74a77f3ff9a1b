"""How a `skiff` server command runs its main coroutine: the process's open-files limit raised,
then asyncio's standard event loop.

Not uvloop, although it makes socket-heavy loops cheaper: a write to a transport that has just
closed raises RuntimeError there (MagicStack/uvloop#506) where asyncio's loop ignores it, and
redis-py does not expect that — under the chaos suite's Redis restarts, nodes on uvloop failed
where the same nodes on asyncio recovered. The fan-out and idle-stream figures of
docs/benchmarks.md are met on the standard loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from broker.runtime.fd_limit import raise_open_files_limit

_T = TypeVar("_T")

logger = logging.getLogger("skiff.broker")


def run_server(main: Coroutine[Any, Any, _T]) -> _T:
    limit = raise_open_files_limit()
    logger.info("open-files limit %d", limit)
    return asyncio.run(main)
