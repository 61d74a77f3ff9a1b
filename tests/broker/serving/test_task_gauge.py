"""`skiff_asyncio_tasks` on /metrics of nodes and the proxy: the chaos and soak runs read it to
detect task leaks."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from broker.serving.metrics import NodeMetrics
from proxy.metrics import ProxyMetrics

pytestmark = pytest.mark.timeout(10)


def gauge(text: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith("skiff_asyncio_tasks"))
    return float(line.rsplit(" ", 1)[1])


async def test_nodes_and_the_proxy_report_their_task_count() -> None:
    proxy = ProxyMetrics()
    app = Starlette(
        routes=[
            NodeMetrics("leader", "L1").route(),
            Route("/proxy-metrics", proxy.endpoint, methods=["GET"]),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert gauge((await http.get("/metrics")).text) >= 1  # this test's own task at least
        assert gauge((await http.get("/proxy-metrics")).text) >= 1
