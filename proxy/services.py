"""One proxy process for several services of one Redis: each service's app (proxy/app.py, over a
Gateway of its own) under the path prefix `/<service>`.

`/<service>/v1/streams/...`, `/<service>/healthz`, `/<service>/_skiff/`: the prefix is taken
off and the service's app serves the rest, with `root_path` set as ASGI mounts do. At the root,
`/healthz` answers for every service (200 when each one is ready), `/static/...` serves the
shared web assets, and anything else is a 404 naming the services and the path form. A single
service keeps the plain paths (no prefix): this router only runs for two or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from broker.json_bytes import dumps
from proxy.cluster.routing import serving
from proxy.gateway import Gateway


class ServiceRouter:
    def __init__(self, apps: Mapping[str, ASGIApp], gateways: Mapping[str, Gateway]) -> None:
        self._apps = dict(apps)
        self._gateways = dict(gateways)
        # Any app serves the web assets: they are the same files for every service.
        self._assets = next(iter(self._apps.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        name, slash, rest = path[1:].partition("/")
        app = self._apps.get(name)
        if app is not None:
            child = dict(scope)
            child["path"] = slash + rest or "/"
            child["root_path"] = scope.get("root_path", "") + "/" + name
            raw = scope.get("raw_path")
            if raw is not None:
                child["raw_path"] = raw[len(name.encode()) + 1 :] or b"/"
            await app(child, receive, send)
        elif path in ("/healthz", "/v1/healthcheck"):
            await self._health(send)
        elif path.startswith("/static/"):
            await self._assets(scope, receive, send)
        else:
            names = ", ".join(sorted(self._apps))
            await _json(
                send,
                404,
                {"error": f"this proxy serves several services ({names}): "
                 f"use /<service>{path if path.startswith('/v1/') else '/v1/...'}"},
            )  # fmt: skip

    async def _health(self, send: Send) -> None:
        services: dict[str, Any] = {}
        for name, gateway in self._gateways.items():
            ready, reason = gateway.ready()
            cluster = gateway.membership.cluster
            services[name] = {
                "status": "ok" if ready else reason,
                "serving": sum(1 for n in cluster.nodes.values() if serving(n)),
                "leader": cluster.leader_id,
            }
        ready = all(s["status"] == "ok" for s in services.values())
        body: dict[str, Any] = {"status": "ok" if ready else "not every service is ready"}
        await _json(send, 200 if ready else 503, {**body, "role": "proxy", "services": services})


async def _json(send: Send, status: int, body: Any) -> None:
    data = dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
