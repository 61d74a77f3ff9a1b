"""The two faces of a leader candidate's HTTP server (broker.serving.role.NodeRole).

- `LeadingRole` while it holds the lease: writes go through its Leadership; the routes reading
  the engine are gated between ticks (broker/leader/tick_gate.py); /metrics and /v1/admin/state.
- `StandbyRole` otherwise: it holds no state and serves nothing but /healthz (503, with the
  reason), /metrics and a 503 admin route; every other /v1 request is answered 503, naming the
  leader when one is known: `{"error": "not the leader; leader is <node> at <url>"}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from broker.cluster.locator import LeaderLocator
from broker.errors import NotLeaderError
from broker.leader.campaign import CandidateStatus
from broker.leader.leadership import Leadership
from broker.leader.tick_gate import gated_routes
from broker.serving.admin import admin_routes
from broker.serving.config import ServeConfig
from broker.serving.hub import Hub
from broker.serving.metrics import NodeMetrics
from broker.store.codec import CodecError

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# Everything a standby cannot serve without state (the admin and health routes stay).
_REFUSED = ("/v1/inputs/{path:path}", "/v1/streams/{path:path}", "/v1/snapshot/{path:path}")


class LeadingRole:
    def __init__(
        self, lead: Leadership, hub: Hub, config: ServeConfig, metrics: NodeMetrics
    ) -> None:
        self._lead = lead
        self._hub = hub
        self._config = config
        self._metrics = metrics

    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        return await self._lead.write(collection, entries, idempotency_key)

    def ready(self) -> tuple[bool, str]:
        return self._lead.ready()

    def status(self) -> dict[str, Any]:
        return self._lead.status()

    def routes(self) -> Sequence[BaseRoute]:
        lead = self._lead
        return [
            self._metrics.route(),
            *admin_routes(self._hub, "leader", lambda: lead.epoch, node_id=lead.ctx.config.node_id),
            *gated_routes(self._hub, self._config, lead.lock),
        ]


class StandbyRole:
    def __init__(
        self,
        node_id: str,
        status: CandidateStatus,
        locator: LeaderLocator,
        metrics: NodeMetrics,
    ) -> None:
        self._node_id = node_id
        self._status = status
        self._locator = locator
        self._metrics = metrics

    async def write(self, collection: str, entries: list[Any], idempotency_key: str | None) -> int:
        raise NotLeaderError(await self.not_the_leader())

    def ready(self) -> tuple[bool, str]:
        if not self._status.redis_ok:
            return False, "redis unreachable"
        return False, self._status.state

    def status(self) -> dict[str, Any]:
        holder = self._status.holder
        return {
            "role": "candidate",
            "node": self._node_id,
            "leader": holder.holder if holder is not None else None,
        }

    def routes(self) -> Sequence[BaseRoute]:
        return [
            self._metrics.route(),
            *admin_routes(lambda: None, "candidate", lambda: None, node_id=self._node_id),
            *(
                Route(path, _refusal(self.not_the_leader), methods=_ALL_METHODS)
                for path in _REFUSED
            ),
        ]

    async def not_the_leader(self) -> str:
        try:
            leader = await self._locator.leader()
        except (redis_errors.RedisError, CodecError):
            leader = None
        if leader is None or leader.node_id == self._node_id:
            return "not the leader; no leader is known"
        return f"not the leader; leader is {leader.node_id} at {leader.url or 'an unknown url'}"


def _refusal(message: Callable[[], Awaitable[str]]) -> Callable[[Request], Awaitable[Response]]:
    async def refuse(request: Request) -> Response:
        return JSONResponse({"error": await message()}, status_code=503)

    return refuse
