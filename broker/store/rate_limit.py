"""Rate limits kept in Redis, so every proxy in front of a service counts one client together.

The rule is GCRA (the generic cell rate algorithm, a leaky bucket kept as one number): a client
may make `burst` requests at once, then one every `1 / per_s` seconds. What is stored per
client is its *theoretical arrival time* (TAT), the moment its bucket will be empty again:

    tat      = max(stored tat, now)
    allow_at = tat + interval - burst * interval
    now >= allow_at  ->  allowed, stored tat = tat + interval (expiring when it is reached)
    otherwise        ->  refused, retry after allow_at - now; nothing is stored

`gcra` is the rule in Python (the proxy's fallback when Redis cannot be reached) and `RATE`
the same rule in one Lua script, so the check and the update are atomic across proxies. The
script reads the clock of the Redis server (`TIME`): proxies whose clocks differ still agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from broker.errors import ConfigError
from broker.store.scripts import LuaScript, RedisCallError


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`burst` requests at once, then `per_s` a second; `per_s == 0` turns the limit off."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if isinstance(self.per_s, bool) or not math.isfinite(self.per_s) or self.per_s < 0:
            raise ConfigError(f"a rate must be a finite number >= 0, got {self.per_s!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigError(f"a burst must be an integer >= 1, got {self.burst!r}")

    @property
    def off(self) -> bool:
        return self.per_s == 0

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two requests at the sustained rate."""
        return 1000.0 / self.per_s


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go ahead, and if not, in how many seconds it would."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds, rounded up, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED: Final = Verdict(True)


def gcra(tat_ms: float | None, now_ms: float, limit: RateLimit) -> tuple[Verdict, float | None]:
    """(verdict, new TAT to store, or None to store nothing) for a request at `now_ms` of a
    client whose stored TAT is `tat_ms` (None: unknown or expired)."""
    interval = limit.interval_ms
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    allow_at = tat + interval - limit.burst * interval
    if now_ms < allow_at:
        return Verdict(False, (allow_at - now_ms) / 1000.0), None
    return ALLOWED, tat + interval


# KEYS[1] = the client's rate key; ARGV = interval ms, burst.
# -> {1, 0} allowed (the TAT stored, expiring when reached) | {0, retry_after_ms} refused.
RATE: Final = LuaScript(
    "rate limit",
    """
-- TIME makes the script non-deterministic: replicate its effects, not the script (the
-- default from Redis 7 on, and what Redis 6.2 needs asked for).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if now < allow_at then return {0, math.ceil(allow_at - now)} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, 0}
""",
)


async def take(redis: Redis, key: str, limit: RateLimit) -> Verdict:
    """Count one request of the client whose rate key is `key` (Keyspace.rate) against `limit`.
    Raises RedisCallError when Redis cannot say."""
    reply = await RATE(redis, [key], [repr(limit.interval_ms), limit.burst])
    try:
        allowed, retry_ms = int(reply[0]), int(reply[1])
    except (TypeError, ValueError, IndexError) as err:
        raise RedisCallError(f"unexpected rate limit reply {reply!r}", transient=False) from err
    return ALLOWED if allowed else Verdict(False, retry_ms / 1000.0)
