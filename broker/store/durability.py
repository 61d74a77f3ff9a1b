"""Durability: what a leader waits for before it acknowledges a write (`--durability`).

- `none` (default): acknowledged once the primary applied the append;
- `replica`: once `replicas` replicas (default 1) hold it in memory (`WAIT replicas timeout`);
- `aof`: once the primary and `replicas` replicas fsynced it to their append-only files
  (`WAITAOF 1 replicas timeout`).

`WAIT`/`WAITAOF` count the replicas that acknowledged the writes *of the connection that sends
it*, so the wait is pipelined behind the write on one connection (`run_durably`). To confirm
something already written (an append whose reply was lost, a retried Idempotency-Key), a tiny
fenced write on the same connection goes first (`confirm`): replication is ordered, so a
replica that holds it holds everything the primary applied before.

Replication is asynchronous: with `none`, a primary that dies can take acknowledged entries
with it (the leader detects it and republishes, see broker/leader/history.py). `replica` closes
that window for a failover; `aof` also for a crash of every server at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from broker.errors import BrokerError, ConfigError
from broker.store.scripts import Arg, LuaScript, RedisCallError

DurabilityMode = Literal["none", "replica", "aof"]
MODES: Final[tuple[DurabilityMode, ...]] = ("none", "replica", "aof")


@dataclass(frozen=True, slots=True)
class Durability:
    mode: DurabilityMode = "none"
    replicas: int = 1
    timeout_ms: int = 1000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"durability is one of {', '.join(MODES)}, got {self.mode!r}")
        if self.replicas < 0 or (self.mode == "replica" and self.replicas < 1):
            raise ConfigError(f"durability replicas must be >= 1, got {self.replicas}")
        if self.timeout_ms < 1:
            raise ConfigError("durability timeout must be >= 1 ms")

    @property
    def command(self) -> tuple[Arg, ...] | None:
        if self.mode == "replica":
            return ("WAIT", self.replicas, self.timeout_ms)
        if self.mode == "aof":
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return None

    def describe(self) -> str:
        if self.mode == "none":
            return "none (acknowledged once the primary applied it)"
        what = "in memory" if self.mode == "replica" else "fsynced to their AOF"
        return f"{self.mode} ({self.replicas} replica(s) {what}, {self.timeout_ms} ms timeout)"


class NotDurableError(BrokerError):
    """The write landed on the primary, but not enough replicas confirmed it in time."""

    def __init__(self, durability: Durability, detail: str) -> None:
        super().__init__(f"not confirmed as {durability.mode} durability requires: {detail}")


async def run_durably(
    redis: Redis,
    durability: Durability,
    script: LuaScript,
    keys: Sequence[str],
    args: Sequence[Arg],
) -> Any:
    """`script`'s reply, once the replicas durability asks for hold what it wrote.

    Raises RedisCallError (the script did not run, or its outcome is unknown) or
    NotDurableError (it ran; the wait fell short or failed)."""
    wait = durability.command
    if wait is None:
        return await script(redis, keys, args)
    for attempt in (1, 2):
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                _queue_wait(redis, pipe, wait, keys[0])
                reply, waited = await pipe.execute(raise_on_error=False)
            if isinstance(reply, redis_errors.NoScriptError) and attempt == 1:
                await redis.script_load(script.source)
                continue
        except redis_errors.RedisError as err:
            raise RedisCallError.wrap(f"script {script.name} (durable)", err) from err
        if isinstance(reply, redis_errors.RedisError):
            raise RedisCallError.wrap(f"script {script.name}", reply)
        check_wait(durability, waited)
        return reply
    raise RedisCallError(f"script {script.name} could not be loaded", transient=False)


def check_wait(durability: Durability, reply: Any) -> None:
    """Raise NotDurableError unless the WAIT/WAITAOF `reply` reached what durability asks."""
    if isinstance(reply, Exception):
        raise NotDurableError(durability, f"{durability.mode} wait failed: {reply}")
    if durability.mode == "aof":
        local, replicas = (int(x) for x in reply)
        if local < 1 or replicas < durability.replicas:
            raise NotDurableError(
                durability, f"AOF fsync: primary {local}, replicas {replicas} after "
                f"{durability.timeout_ms} ms",
            )  # fmt: skip
    elif int(reply) < durability.replicas:
        raise NotDurableError(
            durability, f"{int(reply)} of {durability.replicas} replica(s) after "
            f"{durability.timeout_ms} ms",
        )  # fmt: skip


def _queue_wait(redis: Redis, pipe: Any, wait: tuple[Arg, ...], key: str) -> None:
    if isinstance(redis, RedisCluster):
        # WAIT has no key: route it to the node of the write's slot (the same node gets the
        # script, and a cluster pipeline sends one node's commands on one connection).
        pipe.execute_command(*wait, target_nodes=redis.get_node_from_key(key))
    else:
        pipe.execute_command(*wait)
