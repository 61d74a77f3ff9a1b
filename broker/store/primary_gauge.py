"""`skiff_redis_primary{address} 1`: the Redis primary a process uses, on its /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RedisPrimaryGauge:
    """`skiff_redis_primary{address="host:port"} 1`: the Redis primary this process writes to
    (the service's slot's primary on a Cluster); the previous address's series is removed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauge = Gauge(
            "skiff_redis_primary", "the Redis primary in use (1), by address", ["address"],
            registry=registry,
        )  # fmt: skip
        self._failovers = Counter(
            "skiff_redis_primary_changes", "times the primary in use changed", registry=registry
        )
        self.address: str | None = None

    def set(self, address: str) -> None:
        if address == self.address:
            return
        if self.address is not None:
            self._gauge.remove(self.address)
            self._failovers.inc()
        self._gauge.labels(address).set(1)
        self.address = address
