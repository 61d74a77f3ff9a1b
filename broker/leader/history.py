"""Lost history: Redis holding a shorter history of the current epoch than was published.

Redis replication is asynchronous. A primary that dies can take acknowledged stream entries with
it, and the replica promoted in its place holds the same epoch with a shorter history: meta's
head is below versions that were acknowledged, read by followers and shown to clients. Carrying
on from that head would publish *different* versions under numbers already used.

Evidence that versions above meta's head were published in its epoch:
- this node's own engine (a live leader: it appended and acknowledged them);
- what this node saw as a candidate (`seen`: the highest head it read in that epoch);
- another node's heartbeat record naming that epoch with a higher applied version (a follower
  that read them, or the old leader).

With evidence, the leader republishes its state under a new epoch (followers resync, SSE clients
get a fresh init); the event is logged as an error and counted (`skiff_redis_lost_history`).
Without evidence nothing can tell: a version that only the dead primary and a dead leader held
is gone (docs/reliability.md, "Redis failover", says what each durability setting guarantees).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors

from broker.leader.config import LeaderContext
from broker.store.codec import CodecError, Meta
from broker.store.node_record import NodeRecord
from broker.store.scripts import RedisCallError

logger = logging.getLogger("skiff.broker")


@dataclass(frozen=True, slots=True)
class LostHistory:
    epoch: str
    head: int
    #: The highest version known to have been published in `epoch`, and who knows it.
    published: int
    witness: str

    def describe(self) -> str:
        return (
            f"Redis holds epoch {self.epoch} only up to version {self.head}, but versions up to "
            f"{self.published} were published ({self.witness} has them): versions "
            f"{self.head + 1}..{self.published} were lost (a failover to a replica that had "
            "not received them, or a restart without persistence)"
        )


async def find_lost_history(
    ctx: LeaderContext, meta: Meta, *, known: int = 0, witness: str = "this node"
) -> LostHistory | None:
    """The evidence that `meta`'s epoch had versions beyond its head, or None.

    `known` is a version of `meta.epoch` this node knows was published. Raises RedisCallError."""
    best, who = known, witness
    for record in await other_records(ctx):
        if record.epoch == meta.epoch and record.applied > best:
            best, who = record.applied, f"node {record.node_id}"
    if best <= meta.head:
        return None
    return LostHistory(meta.epoch, meta.head, best, who)


def report(ctx: LeaderContext, lost: LostHistory) -> None:
    ctx.metrics.lost_history.inc()
    logger.error(
        "%s: %s; republishing this node's state under a new epoch", ctx.config.node_id,
        lost.describe(),
    )  # fmt: skip


async def other_records(ctx: LeaderContext) -> list[NodeRecord]:
    """The live heartbeat records of the other nodes of the service."""
    keys = ctx.keyspace
    try:
        ids: list[Any] = await ctx.redis.zrange(keys.nodes, 0, -1)
        others = [i.decode() for i in ids if i.decode() != ctx.config.node_id]
        raw: list[Any] = await ctx.redis.mget([keys.node(i) for i in others]) if others else []
    except redis_errors.RedisError as err:
        raise RedisCallError.wrap("reading node records", err) from err
    records = []
    for item in raw:
        if item is None:
            continue
        try:
            records.append(NodeRecord.decode(item))
        except CodecError:
            continue
    return records
