"""LeaderConfig: how a leader candidate campaigns, snapshots and announces itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from broker.errors import ConfigError
from broker.runtime.tasks import Supervisor
from broker.serving.metrics import NodeMetrics
from broker.store.durability import Durability
from broker.store.keyspace import Keyspace
from graph import Service


@dataclass(frozen=True, slots=True)
class LeaderConfig:
    """`lease_ttl_s`: how long the lease outlives its holder's last renewal (a crashed leader
    is replaced within about this long). A snapshot is written every `snapshot_every` versions,
    or `snapshot_interval_s` seconds after the previous one when the version moved. A candidate
    that finds no keyspace waits `fresh_start_grace_s` before creating one, so a live leader
    whose Redis lost its data (FLUSHALL) republishes its state first. When the candidate has
    evidence that acknowledged writes existed (it saw a head above 0, or a node reports an
    applied version above 0), it waits `data_loss_wait_s` instead for the node holding that
    state to republish, and only then starts empty, logging the loss as an error. A keyspace
    holding a shorter history of its epoch than a node has seen (a failover to a stale replica)
    is waited on for `lost_history_wait_s` (default three lease TTLs) when no leader can be
    seen: a leader that survived retakes the lease within about a TTL of reaching Redis again,
    while one that died with the primary must not stop writes for as long as a vanished
    keyspace does.
    `durability` says what a write waits for before it is acknowledged
    (broker/store/durability.py)."""

    node_id: str
    advertise_url: str | None = None
    lease_ttl_s: float = 3.0
    snapshot_every: int = 1000
    snapshot_interval_s: float = 60.0
    chunk_size: int = 2000
    fresh_start_grace_s: float = 1.5
    data_loss_wait_s: float = 60.0
    lost_history_wait_s: float | None = None
    durability: Durability = field(default_factory=Durability)

    def __post_init__(self) -> None:
        if not self.node_id:
            raise ConfigError("node id must not be empty")
        if not 0.1 <= self.lease_ttl_s <= 600:
            raise ConfigError(f"lease ttl must be within 0.1..600 s, got {self.lease_ttl_s}")
        if self.snapshot_every < 1:
            raise ConfigError(f"snapshot every must be >= 1 version, got {self.snapshot_every}")
        if self.snapshot_interval_s <= 0:
            raise ConfigError("snapshot interval must be positive")
        if self.chunk_size < 1:
            raise ConfigError("chunk size must be >= 1")
        if self.fresh_start_grace_s < 0:
            raise ConfigError("fresh start grace must not be negative")
        if self.data_loss_wait_s < self.fresh_start_grace_s:
            raise ConfigError(
                f"data loss wait must be at least the fresh start grace "
                f"({self.fresh_start_grace_s:g} s), got {self.data_loss_wait_s:g}"
            )
        if self.lost_history_wait_s is not None and self.lost_history_wait_s < 0:
            raise ConfigError(
                f"lost history wait must not be negative, got {self.lost_history_wait_s:g}"
            )

    @property
    def lease_ttl_ms(self) -> int:
        return round(self.lease_ttl_s * 1000)

    @property
    def history_wait_s(self) -> float:
        """How long a standby waits for an unseen leader to republish a shortened history."""
        if self.lost_history_wait_s is not None:
            return self.lost_history_wait_s
        return 3 * self.lease_ttl_s

    @property
    def renew_interval_s(self) -> float:
        """A holder renews three times per TTL: two renewals may fail before it expires."""
        return self.lease_ttl_s / 3

    @property
    def acquire_interval_s(self) -> float:
        """A standby polls four times per TTL, so it notices an expired lease quickly."""
        return self.lease_ttl_s / 4


@dataclass(frozen=True, slots=True)
class LeaderContext:
    """What every part of a leader shares: its Redis, keys, service, settings and metrics."""

    redis: Redis
    keyspace: Keyspace
    service: Service
    config: LeaderConfig
    metrics: NodeMetrics
    #: Owns the node's background tasks (lease keeper, snapshots, campaign).
    tasks: Supervisor
