"""Prometheus metrics of one node, in a registry of its own (several nodes may share a
process in tests), served at /metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.store.primary_gauge import RedisPrimaryGauge


class NodeMetrics:
    def __init__(self, role: str, node_id: str) -> None:
        self.registry = registry = CollectorRegistry()
        labels = {"role": role, "node": node_id}

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry).labels(**labels)

        self.head_version = gauge("skiff_head_version", "newest version published in Redis")
        self.applied_version = gauge("skiff_applied_version", "version this node has applied")
        self.lag_versions = gauge("skiff_lag_versions", "head version minus applied version")
        self.lag_ms = gauge("skiff_lag_ms", "age in ms of the newest unapplied delta (0 if none)")
        self.snapshot_version = gauge("skiff_snapshot_version", "version of the newest snapshot")
        self.snapshot_bytes = gauge("skiff_snapshot_bytes", "size of the last snapshot written")
        self.subscribers = gauge("skiff_subscribers", "connected SSE readers")
        self.instances = gauge("skiff_resource_instances", "live resource instances")
        self.streams = gauge("skiff_streams", "stream ids held by this node")
        self.ready = gauge("skiff_ready", "1 when /healthz answers 200")
        # Read when /metrics is served (on the event loop): leak checks in the chaos and soak runs.
        gauge("skiff_asyncio_tasks", "asyncio tasks alive in this process").set_function(
            _task_count
        )
        self.tick_seconds = Histogram(
            "skiff_tick_seconds",
            "time to compute and commit one tick",
            list(labels),
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
            registry=registry,
        ).labels(**labels)
        self.snapshot_seconds = Histogram(
            "skiff_snapshot_seconds",
            "time to write one snapshot",
            list(labels),
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        ).labels(**labels)
        self.redis_errors = Counter(
            "skiff_redis_errors", "failed Redis calls", list(labels), registry=registry
        ).labels(**labels)
        self.resyncs = Counter(
            "skiff_resyncs", "full resyncs from a snapshot", list(labels), registry=registry
        ).labels(**labels)
        self.writes = Counter(
            "skiff_writes", "write batches acknowledged", list(labels), registry=registry
        ).labels(**labels)
        self.not_durable = Counter(
            "skiff_writes_not_durable",
            "writes answered 503: the replicas --durability asks for did not confirm in time",
            list(labels), registry=registry,
        ).labels(**labels)  # fmt: skip
        self.lost_history = Counter(
            "skiff_redis_lost_history",
            "times Redis was found holding a shorter history than was acknowledged (a failover "
            "to a stale replica, a restart without persistence): republished under a new epoch",
            list(labels), registry=registry,
        ).labels(**labels)  # fmt: skip
        self.redis_primary = RedisPrimaryGauge(registry)

    def route(self) -> Route:
        async def metrics(request: Request) -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return Route("/metrics", metrics, methods=["GET"])


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # collected outside the event loop
        return float("nan")
