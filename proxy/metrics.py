"""Prometheus metrics of one proxy, in a registry of its own (tests run several per process)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from broker.http.guarded_protocol import ConnectionGuard
from broker.store.primary_gauge import RedisPrimaryGauge
from proxy.cluster.membership import Cluster
from proxy.cluster.routing import serving


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "skiff_proxy_requests",
            "requests answered, by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.upstream_seconds = Histogram(
            "skiff_proxy_upstream_seconds",
            "time for a node to answer a control request, by method",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
            registry=registry,
        )
        self.upstream_errors = Counter(
            "skiff_proxy_upstream_errors",
            "requests a node could not answer (unreachable, failed, 503)",
            ["node"],
            registry=registry,
        )
        self.rehomes = Counter(
            "skiff_proxy_rehomes", "streams moved to another node", registry=registry
        )
        self.write_retries = Counter(
            "skiff_proxy_write_retries", "writes retried across a leader change", registry=registry
        )
        self.open_streams = Gauge(
            "skiff_proxy_open_streams", "SSE streams relayed right now", registry=registry
        )
        self.nodes = Gauge(
            "skiff_proxy_nodes",
            "registered nodes, by role and state",
            ["role", "state"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "skiff_proxy_rate_limited",
            "requests refused 429 by a client's rate limit, by action (streams, writes)",
            ["action"],
            registry=registry,
        )
        self.redis_ok = Gauge(
            "skiff_proxy_membership_ok", "1 while membership is read from Redis", registry=registry
        )
        self.redis_primary = RedisPrimaryGauge(registry)
        # Read when /metrics is served (on the event loop): leak checks in the chaos and soak runs.
        Gauge(
            "skiff_asyncio_tasks", "asyncio tasks alive in this process", registry=registry
        ).set_function(_task_count)

    def watch_guard(self, guard: ConnectionGuard) -> None:
        """Expose what the connection guard refused and timed out."""
        self.registry.register(_GuardCollector(guard))

    def observe_cluster(self, cluster: Cluster, healthy: bool) -> None:
        self.nodes.clear()
        for node in cluster.nodes.values():
            state = "serving" if serving(node) else "draining" if node.draining else "unready"
            self.nodes.labels(node.role, state).inc()
        self.redis_ok.set(1 if healthy else 0)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected outside the event loop
        return float("nan")


class _GuardCollector(Collector):
    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "skiff_proxy_connections_refused",
            "connections refused 429: their address was at --max-connections-per-address",
            value=self._guard.refused,
        )
        yield CounterMetricFamily(
            "skiff_proxy_header_timeouts",
            "connections closed 408: a request head incomplete after --header-timeout",
            value=self._guard.timed_out,
        )
