"""The Lua scripts that make leadership safe: every write a leader makes to the replication keys
goes through one of them, and each first checks, atomically, that the caller still holds the
lease (exact `<token>:<holder>` match), so a paused or partitioned old leader is fenced out.

Contracts (KEYS / ARGV -> reply). Every reply is an array whose first element is a status; a
rejection never writes anything:

ACQUIRE  KEYS lease, fence; ARGV holder, ttl_ms
         -> {1, record}            the lease was free; record = "<INCR fence>:<holder>", PX ttl
         -> {0, record, pttl}      held by record for pttl more ms
RENEW    KEYS lease; ARGV record, ttl_ms -> 1 (PEXPIREd) | 0 (not the holder any more)
RELEASE  KEYS lease; ARGV record -> 1 (deleted) | 0 (not the holder)
MARK     KEYS lease; ARGV record -> 1 (re-set the lease's own expiry: a write that replicates,
         for a WAIT to confirm what this primary applied before) | 0 (not the holder)

APPEND   KEYS meta, lease, deltas, inputs[, idem]
         ARGV record, epoch, version, now_ms, idem_ttl_ms, n, <n delta field/values>,
              m, <m input field/values>
         -> {"ok", version}        XADDed `<version>-0` to deltas (and to inputs when m > 0),
                                   meta head = version, head_ms = now_ms, idem = version PX ttl
         -> {"dup", version}       idem already records `version`
         -> {"fenced", record|""}  {"nometa", ""}  {"epoch", current}  {"gap", head}
INIT     KEYS meta, lease, deltas, inputs, new snapshot, old snapshot
         ARGV record, expected epoch ("" = no meta), expected snapshot, grace_ms, <meta pairs>
         -> {"ok"}                 deltas and inputs deleted, meta replaced by the pairs, the new
                                   snapshot persisted, the old one expires after grace_ms
         -> {"fenced", ..}  {"epoch", current|""}  {"stale", snapshot}  {"nosnap", ""}
SNAPSHOT KEYS meta, lease, deltas, inputs, new snapshot, old snapshot
         ARGV record, epoch, version, expected snapshot, trim_before, grace_ms, now_ms
         -> {"ok", trimmed deltas, trimmed inputs}   meta snapshot = version; entries with a
                                   version < trim_before removed (XTRIM MINID); the new snapshot
                                   persisted, the old one expires after grace_ms
         -> {"fenced", ..}  {"nometa", ""}  {"epoch", ..}  {"stale", snapshot}  {"range", head}
            {"nosnap", ""}
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, Final, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.errors import BrokerError

Arg = str | bytes | int


class RedisCallError(BrokerError):
    """A Redis call failed. `transient` when the server could not be reached or did not answer
    in time: the outcome of a write is then unknown, and the caller must read the state back
    (for APPEND: meta `head`; a retry of an append that did land is rejected as a gap)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient

    @classmethod
    def wrap(cls, what: str, err: redis_errors.RedisError | OSError) -> RedisCallError:
        transient = isinstance(
            err, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError
        )
        return cls(f"{what} failed: {err}", transient=transient)


class LuaScript:
    """A script run by EVALSHA, loaded on NOSCRIPT: a restarted or flushed server (SCRIPT FLUSH,
    a fresh replica after failover) simply gets it again. Not bound to a client or a loop."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            try:
                return await _awaited(redis.evalsha(self.sha, len(keys), *keys, *args))
            except redis_errors.NoScriptError:
                await _awaited(redis.script_load(self.source))
                return await _awaited(redis.evalsha(self.sha, len(keys), *keys, *args))
        except redis_errors.RedisError as err:
            raise RedisCallError.wrap(f"script {self.name}", err) from err


async def _awaited(result: Any) -> Any:
    # redis-py types its commands as `Awaitable[T] | T` for the sync/async twins.
    return await cast(Awaitable[Any], result)


def status_of(reply: Any) -> tuple[str, list[str]]:
    """(status, details) of an APPEND/INIT/SNAPSHOT reply, as text whatever the client decodes."""
    if not isinstance(reply, list) or not reply:
        raise RedisCallError(f"unexpected script reply {reply!r}", transient=False)
    text = [x.decode() if isinstance(x, bytes) else str(x) for x in reply]
    return text[0], text[1:]


# Shared prologue: KEYS[1] = meta, KEYS[2] = lease, ARGV[1] = lease record, ARGV[2] = epoch.
_CHECKS = """
local function fenced()
  local lease = redis.call('GET', KEYS[2])
  if lease ~= ARGV[1] then return {'fenced', lease or ''} end
  return nil
end
local function epoch_changed()
  local epoch = redis.call('HGET', KEYS[1], 'epoch')
  if not epoch then return {'nometa', ''} end
  if epoch ~= ARGV[2] then return {'epoch', epoch} end
  return nil
end
-- The version a stream's newest entry stands for (ids are `<version>-0`), 0 when empty.
local function top(stream)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if not last then return 0 end
  return tonumber(string.match(last[1], '^(%d+)'))
end
"""

ACQUIRE: Final = LuaScript(
    "acquire",
    """
local current = redis.call('GET', KEYS[1])
if current then return {0, current, redis.call('PTTL', KEYS[1])} end
-- The token is taken only when the lease is free, so losing candidates do not burn tokens.
local record = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], record, 'NX', 'PX', ARGV[2])
return {1, record}
""",
)

RENEW: Final = LuaScript(
    "renew",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
""",
)

RELEASE: Final = LuaScript(
    "release",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
""",
)

MARK: Final = LuaScript(
    "mark",
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
""",
)

APPEND: Final = LuaScript(
    "append",
    _CHECKS
    + """
local err = fenced() or epoch_changed()
if err then return err end
if KEYS[5] then
  local seen = redis.call('GET', KEYS[5])
  if seen then return {'dup', seen} end
end
local head = tonumber(redis.call('HGET', KEYS[1], 'head'))
local version = tonumber(ARGV[3])
if version ~= head + 1 then return {'gap', tostring(head)} end
local n = tonumber(ARGV[6])
local m = tonumber(ARGV[7 + n])
-- Both XADDs could only fail on an id at or below a stream's top; checking first keeps a
-- failure from leaving the delta written without its input (scripts do not roll back).
if top(KEYS[3]) >= version or (m > 0 and top(KEYS[4]) >= version) then
  return {'gap', tostring(head)}
end
local id = ARGV[3] .. '-0'
redis.call('XADD', KEYS[3], id, unpack(ARGV, 7, 6 + n))
if m > 0 then redis.call('XADD', KEYS[4], id, unpack(ARGV, 8 + n, 7 + n + m)) end
redis.call('HSET', KEYS[1], 'head', ARGV[3], 'head_ms', ARGV[4])
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[5]) end
return {'ok', ARGV[3]}
""",
)

INIT: Final = LuaScript(
    "init",
    _CHECKS
    + """
local err = fenced()
if err then return err end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if (epoch or '') ~= ARGV[2] then return {'epoch', epoch or ''} end
if epoch then
  local snapshot = redis.call('HGET', KEYS[1], 'snapshot')
  if snapshot ~= ARGV[3] then return {'stale', snapshot or ''} end
end
if redis.call('HEXISTS', KEYS[5], 'manifest') == 0 then return {'nosnap', ''} end
-- The streams belong to the old epoch: followers must not read them as continuing the new one.
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('PERSIST', KEYS[5])
if epoch and KEYS[6] ~= KEYS[5] then redis.call('PEXPIRE', KEYS[6], ARGV[4]) end
return {'ok'}
""",
)

SNAPSHOT: Final = LuaScript(
    "snapshot",
    _CHECKS
    + """
local err = fenced() or epoch_changed()
if err then return err end
local current = redis.call('HGET', KEYS[1], 'snapshot')
if current ~= ARGV[4] then return {'stale', current or ''} end
local version = tonumber(ARGV[3])
local head = redis.call('HGET', KEYS[1], 'head')
local trim_before = tonumber(ARGV[5])
-- Never trim past the snapshot: entries after it are the only way from it to the head.
if version <= tonumber(current) or version > tonumber(head) or trim_before > version + 1 then
  return {'range', head}
end
if redis.call('HEXISTS', KEYS[5], 'manifest') == 0 then return {'nosnap', ''} end
redis.call('PERSIST', KEYS[5])
if KEYS[6] ~= KEYS[5] then redis.call('PEXPIRE', KEYS[6], ARGV[6]) end
redis.call('HSET', KEYS[1], 'snapshot', ARGV[3], 'snapshot_ms', ARGV[7])
local minid = ARGV[5] .. '-0'
local trimmed_deltas = redis.call('XTRIM', KEYS[3], 'MINID', minid)
local trimmed_inputs = redis.call('XTRIM', KEYS[4], 'MINID', minid)
return {'ok', tostring(trimmed_deltas), tostring(trimmed_inputs)}
""",
)
