"""NodeRole: what differs between a single node, a leader and a follower.

The HTTP app (broker/serving/app.py) serves the same routes on every node; a role decides how a
write is carried out (applied locally, made durable in Redis first, or forwarded to the leader),
whether the node is ready, and which extra routes (metrics, admin) it adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from starlette.routing import BaseRoute

from broker.serving.hub import Hub


class NodeRole(Protocol):
    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        """Carry out one validated-shape PATCH; return the version that holds it.

        Raises graph errors (400/404/422) or broker.errors.HttpError for the HTTP status."""

    def ready(self) -> tuple[bool, str]:
        """(ready, reason) for /healthz: 200 when ready, else 503 with the reason."""

    def status(self) -> dict[str, Any]:
        """Extra fields for the /healthz body (role, version, epoch, ...)."""

    def routes(self) -> Sequence[BaseRoute]:
        """Routes this role adds (e.g. /metrics, /v1/admin/...)."""


class LocalRole:
    """A single node: writes apply to the in-memory engine (no Redis)."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        # Runs the tick and queues its updates for every reader before the reply.
        return self._hub.apply({collection: entries}).version

    def ready(self) -> tuple[bool, str]:
        return (False, "draining") if self._hub.draining else (True, "ok")

    def status(self) -> dict[str, Any]:
        return {"role": "single", "version": self._hub.engine.version}

    def routes(self) -> Sequence[BaseRoute]:
        return ()
