"""StreamRegistry: where each proxied stream lives, kept in Redis so any proxy can re-home it.

`stream:<id>` holds a StreamRecord (JSON: resource, params, node, created_ms, and with identity
tokens on the `owner`: the `sub` of the token that created it, never the token) with a PX expiry:
a stream lives, behind the proxy, as long as its record. Every proxy relaying a GET of the
stream refreshes the expiry, so a connected stream never lapses; one nobody reads for
`ttl` is forgotten like an idle stream on a node.

`placement:<digest>` maps a `(resource, params)` instance to the node that last received a
stream of it: a hint that lets identical streams share one instance on one follower.

Moving a stream to another node is a compare-and-set on the exact record bytes, so two proxies
re-homing the same stream at once agree on one new node.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from broker.json_bytes import dumps
from broker.runtime.tasks import Supervisor, stop_all
from broker.store.codec import CodecError, loads
from broker.store.connection import honour_cancellation
from broker.store.keyspace import Keyspace
from broker.store.scripts import Arg, LuaScript, RedisCallError
from broker.types import Json
from proxy.errors import ProxyConfigError, ProxyError

logger = logging.getLogger("skiff.proxy")

# KEYS[1] = stream key; ARGV = expected record, new record, ttl ms.
# Returns 1 when swapped, else the record that is there now (nil when it expired).
_MOVE: Final = LuaScript(
    "registry move",
    """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return current
""",
)
# KEYS = stream keys; ARGV[1] = ttl ms. One call for a batch of records: as separate PEXPIREs
# in a pipeline, redis-py's per-command work held a proxy's loop for ~40 ms per 1,000 streams
# every keepalive round (write latency spikes of 200 ms with 5,000 streams held).
_TOUCH: Final = LuaScript(
    "registry touch",
    """
local alive = 0
for i = 1, #KEYS do alive = alive + redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return alive
""",
)


class RegistryError(ProxyError):
    """Redis failed or held something that is not a stream record."""


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One proxied stream: the instance it subscribes to, the node hosting it now, and whose
    it is (None: created without a token). Moving it keeps the owner."""

    resource: str
    params: Json
    node_id: str
    created_ms: int
    owner: str | None = None

    def encode(self) -> bytes:
        record: dict[str, Json] = {
            "resource": self.resource,
            "params": self.params,
            "node": self.node_id,
            "created_ms": self.created_ms,
        }
        if self.owner is not None:
            record["owner"] = self.owner
        return dumps(record)

    @classmethod
    def decode(cls, data: bytes) -> StreamRecord:
        raw = loads(data)
        try:
            resource, node, created = raw["resource"], raw["node"], raw["created_ms"]
            if not isinstance(resource, str) or not isinstance(node, str):
                raise TypeError("resource and node must be strings")
            if not isinstance(created, int) or isinstance(created, bool):
                raise TypeError("created_ms must be an integer")
            owner = raw.get("owner")
            if owner is not None and not isinstance(owner, str):
                raise TypeError("owner must be a string")
            return cls(resource, raw["params"], node, created, owner)
        except (KeyError, TypeError) as err:
            raise CodecError(f"not a stream record: {err}") from err

    def moved_to(self, node_id: str) -> StreamRecord:
        return replace(self, node_id=node_id)


def instance_digest(resource: str, params: Json) -> str:
    """A name for the instance of `(resource, params)`: equal JSON, equal digest."""
    canonical = dumps([resource, _sorted(params)])
    return hashlib.blake2b(canonical, digest_size=12).hexdigest()


def _sorted(value: Json) -> Json:
    # Object members in a canonical order (orjson's OPT_SORT_KEYS refuses non-str keys, and
    # params come from JSON, so every key is a str anyway).
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class StreamRegistry:
    def __init__(self, redis: Redis, keyspace: Keyspace, ttl_ms: int) -> None:
        if ttl_ms < 1:
            raise ProxyConfigError(f"registry ttl must be >= 1 ms, got {ttl_ms}")
        self._redis = redis
        self._keys = keyspace
        self.ttl_ms = ttl_ms

    async def get(self, stream_id: str) -> StreamRecord | None:
        raw = await self._call(self._redis.get(self._keys.stream(stream_id)))
        return None if raw is None else _decode(raw)

    async def put(self, stream_id: str, record: StreamRecord, placement: str | None) -> None:
        """Register a new stream (and, with `placement`, remember where its instance lives)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.stream(stream_id), record.encode(), px=self.ttl_ms)
            if placement is not None:
                pipe.set(self._keys.placement(placement), record.node_id, px=self.ttl_ms)
            await self._call(pipe.execute())

    async def touch(self, stream_id: str) -> bool:
        """Extend a stream's life (a client is connected); False when it already lapsed."""
        key = self._keys.stream(stream_id)
        return bool(await self._call(self._redis.pexpire(key, self.ttl_ms)))

    async def touch_many(self, stream_ids: list[str], batch: int = 1000) -> None:
        for start in range(0, len(stream_ids), batch):
            keys = [self._keys.stream(s) for s in stream_ids[start : start + batch]]
            await self._script(_TOUCH, keys, [self.ttl_ms])

    async def delete(self, stream_id: str) -> bool:
        return bool(await self._call(self._redis.delete(self._keys.stream(stream_id))))

    async def move(self, stream_id: str, record: StreamRecord, node_id: str) -> StreamRecord | None:
        """Re-home: set the stream's node to `node_id` if its record is still `record`.

        Returns the record in force afterwards: ours, or the one another proxy wrote first
        (None if the stream lapsed meanwhile)."""
        moved = record.moved_to(node_id)
        reply = await self._script(
            _MOVE, [self._keys.stream(stream_id)], [record.encode(), moved.encode(), self.ttl_ms]
        )
        if reply == 1:
            return moved
        return None if reply is None else _decode(reply)

    async def placement(self, digest: str) -> str | None:
        raw = await self._call(self._redis.get(self._keys.placement(digest)))
        return None if raw is None else bytes(raw).decode(errors="replace")

    async def _script(self, script: LuaScript, keys: list[str], args: list[Arg]) -> Any:
        try:
            return await script(self._redis, keys, args)
        except RedisCallError as err:
            raise RegistryError(f"stream registry unavailable: {err}") from err

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (redis_errors.RedisError, OSError) as err:
            raise RegistryError(f"stream registry unavailable: {err}") from err


def _decode(raw: bytes) -> StreamRecord:
    try:
        return StreamRecord.decode(raw)
    except CodecError as err:
        raise RegistryError(str(err)) from err


class KeepAlive:
    """Keeps the records of the streams this proxy relays from expiring: every `interval_s`
    one pipeline of PEXPIREs for all of them (not one timer per stream)."""

    def __init__(
        self, registry: StreamRegistry, interval_s: float, *, tasks: Supervisor | None = None
    ) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._tasks = tasks or Supervisor("proxy stream keepalive")
        self._held: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def hold(self, stream_id: str) -> Callable[[], None]:
        """Keep `stream_id` alive until the returned function is called."""
        self._held[stream_id] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._held[stream_id] -= 1
                if self._held[stream_id] <= 0:
                    del self._held[stream_id]

        return release

    @property
    def held(self) -> int:
        return len(self._held)

    async def __aenter__(self) -> KeepAlive:
        self._task = self._tasks.spawn(self._run(), name="proxy stream keepalive")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_all(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self._registry.touch_many(list(self._held))
            except RegistryError as err:
                logger.warning("cannot refresh stream records: %s", err)
            honour_cancellation()
