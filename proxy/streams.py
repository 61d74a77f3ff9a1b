"""StreamService: creating, locating, re-homing and deleting streams behind the proxy.

Creation: pick a follower (routing.choose_stream_host), mint an id naming it, ask the follower to
create the stream under that id, then register it (resource, params, node) in Redis. A follower
that is unreachable or answers 503 (draining) is skipped for the next one.

Reading: the registry says where the stream lives. When that node is no longer a serving member
(crashed, drained, deregistered), or refuses the stream (unreachable, 503), the stream is
*re-homed*: another follower is chosen, the registry record is moved to it with a compare-and-set
(two proxies re-homing at once agree on one node), and the stream is recreated there under the
same id — node-side creation with a given id is idempotent, so whoever gets there first creates
it and the other finds it. The client's reconnect then continues on the new node with an init or,
when its Last-Event-ID can be resumed there, an update. A node that answers 404 for a registered
stream forgot it (idle expiry, restart): it is recreated in place.

A live stream id therefore never answers 404 because its follower died: 404 means the id was
never minted, was deleted, or nobody read it for the registry TTL.

With identity tokens on, the record keeps the creator's `sub` as the stream's owner: a read or
delete by another identity is answered 404 here, before any node is asked (broker/http/access.py
says why 404), and every request for the stream — its re-creation on a new node included —
carries the caller's token to the node, which checks it again and builds from its claims.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from broker.http.access import Access, Caller
from broker.http.errors import HttpError
from broker.http.sse import parse_event_id
from broker.json_bytes import dumps
from broker.runtime.clock import now_ms
from broker.store.node_record import NodeRecord
from broker.types import Json
from proxy import stream_ids
from proxy.cluster import routing
from proxy.cluster.membership import Membership
from proxy.cluster.registry import RegistryError, StreamRecord, StreamRegistry, instance_digest
from proxy.errors import InvalidStreamIdError, NodeUnavailableError, NoNodeError
from proxy.metrics import ProxyMetrics
from proxy.node_stream import NodeStream
from proxy.upstream import Reply, Upstream, segment

_T = TypeVar("_T")

logger = logging.getLogger("skiff.proxy")

_CREATE_ATTEMPTS: Final = 3
_OPEN_ATTEMPTS: Final = 4


@dataclass(frozen=True, slots=True)
class Opened:
    """A stream answered 200 by `node`; `stream` is open and must be relayed or closed."""

    node: NodeRecord
    stream: NodeStream


class StreamService:
    def __init__(
        self,
        membership: Membership,
        registry: StreamRegistry,
        upstream: Upstream,
        metrics: ProxyMetrics,
        access: Access | None = None,
    ) -> None:
        self._membership = membership
        self._registry = registry
        self._upstream = upstream
        self._metrics = metrics
        self._access = access or Access(None)
        self._ledger = routing.PlacementLedger()

    async def create(
        self, resource: str, body: bytes, params: Json, caller: Caller | None = None
    ) -> Reply:
        """`POST /v1/streams/{resource}`: 201 with the new id, or the node's error reply."""
        digest = instance_digest(resource, params)
        preferred = await _registry_call(self._registry.placement(digest))
        tried: set[str] = set()
        full: Reply | None = None  # a follower's 429: relayed when no other one has room
        for _ in range(_CREATE_ATTEMPTS):
            try:
                node = _routed(
                    lambda: routing.choose_stream_host(
                        self._membership.cluster,
                        preferred=preferred,
                        ledger=self._ledger,
                        exclude=tried,
                    )
                )
            except HttpError:
                if full is not None:
                    return full
                raise
            stream_id = stream_ids.mint(node.node_id)
            try:
                reply = await self._upstream.create_stream(
                    node, resource, body, stream_id, caller.token if caller else None
                )
            except NodeUnavailableError as err:
                self._unavailable(node, err.reason)
                tried.add(node.node_id)
                continue
            if reply.status == 503:
                self._unavailable(node, "503")
                tried.add(node.node_id)
                continue
            if reply.status == 429:
                # That follower holds its maximum of streams: another one may have room.
                full = reply
                tried.add(node.node_id)
                continue
            if reply.status != 201:
                return reply
            owner = caller.subject if caller else None
            record = StreamRecord(resource, params, node.node_id, now_ms(), owner)
            try:
                await self._registry.put(stream_id, record, digest)
            except RegistryError as err:
                # Unregistered, the stream could not outlive its follower: refuse it.
                logger.warning("%s", err)
                await self._forget_on(node, stream_id)
                raise HttpError(503, "the stream registry is unavailable") from err
            self._ledger.add(node.node_id)
            return Reply(201, stream_id.encode(), "text/plain; charset=utf-8")
        if full is not None:
            return full
        raise HttpError(503, "no follower could create the stream")

    async def open(
        self, stream_id: str, last_event_id: str | None, caller: Caller | None = None
    ) -> Opened | Reply:
        """`GET /v1/streams/{id}`: an open 200 stream, or an error reply to relay."""
        parsed = _parse(stream_id)
        record = await _registry_call(self._registry.get(stream_id))
        token = caller.token if caller else None
        if record is None:
            return await self._open_unregistered(parsed, last_event_id, token)
        self._access.require_stream(caller or Caller(), stream_id, record.owner)
        since = parse_event_id(last_event_id) if last_event_id else None
        tried: set[str] = set()
        for _ in range(_OPEN_ATTEMPTS):
            node = routing.find(self._membership.cluster, record.node_id)
            if node is None or node.node_id in tried:
                record = await self._rehome(stream_id, record, tried, since, token)
                continue
            try:
                response = await self._upstream.open_stream(node, stream_id, last_event_id, token)
            except NodeUnavailableError as err:
                self._unavailable(node, err.reason)
                tried.add(node.node_id)
                continue
            if response.status == 200:
                return Opened(node, response)
            body = await response.read_whole()
            if response.status == 404:
                # The node forgot the stream (idle expiry, restart): recreate it where it is.
                try:
                    await self._ensure_created(node, stream_id, record, token)
                except NodeUnavailableError as err:
                    self._unavailable(node, err.reason)
                    tried.add(node.node_id)
                continue
            if response.status == 503:
                self._unavailable(node, "503")
                tried.add(node.node_id)
                continue
            return Reply(response.status, body, response.headers.get("content-type"))
        raise HttpError(503, f"no follower could serve stream {stream_id}")

    async def delete(self, stream_id: str, caller: Caller | None = None) -> Reply:
        """`DELETE /v1/streams/{id}`: removed from its node and from the registry."""
        parsed = _parse(stream_id)
        record = await _registry_call(self._registry.get(stream_id))
        caller = caller or Caller()
        self._access.require_stream(
            caller, stream_id, record.owner if record else None, deleting=True
        )
        node_id = record.node_id if record is not None else parsed.node_id
        node = self._membership.cluster.nodes.get(node_id)
        reply: Reply | None = None
        if node is not None and node.url is not None:
            try:
                reply = await self._upstream.request(
                    node, "DELETE", f"/v1/streams/{segment(stream_id)}", user_token=caller.token
                )
            except NodeUnavailableError as err:
                self._unavailable(node, err.reason)
        if record is None:
            if reply is None:
                raise HttpError(404, f"unknown stream {stream_id!r}")
            return reply
        await _registry_call(self._registry.delete(stream_id))
        # Registered: gone from the node too, or the node is gone, or it had forgotten it.
        return Reply(200, b"{}", "application/json")

    async def _open_unregistered(
        self, parsed: stream_ids.StreamId, last_event_id: str | None, token: str | None
    ) -> Opened | Reply:
        # No record (lapsed, never registered, or lost with Redis's data): the node the id
        # names first, then every other stream host, since a re-homed stream lives on a node its
        # id does not name. Without a record the proxy cannot recreate a stream, only find it.
        cluster = self._membership.cluster
        named = routing.find(cluster, parsed.node_id)
        candidates = [named] if named is not None else []
        candidates += routing.stream_hosts(cluster, exclude={parsed.node_id})
        for node in candidates:
            try:
                response = await self._upstream.open_stream(node, str(parsed), last_event_id, token)
            except NodeUnavailableError as err:
                self._unavailable(node, err.reason)
                continue
            if response.status == 200:
                return Opened(node, response)
            body = await response.read_whole()
            if response.status != 404:
                return Reply(response.status, body, response.headers.get("content-type"))
        raise HttpError(404, f"unknown stream {str(parsed)!r}")

    async def _rehome(
        self,
        stream_id: str,
        record: StreamRecord,
        tried: set[str],
        since: tuple[str, int] | None,
        token: str | None,
    ) -> StreamRecord:
        cluster = self._membership.cluster
        digest = instance_digest(record.resource, record.params)
        preferred = await _registry_call(self._registry.placement(digest))
        target = _routed(
            lambda: routing.choose_rehome_host(
                cluster,
                exclude={record.node_id, *tried},
                since=since,
                preferred=preferred,
                ledger=self._ledger,
            )
        )
        current = await _registry_call(self._registry.move(stream_id, record, target.node_id))
        if current is None:
            raise HttpError(404, f"unknown stream {stream_id!r}")
        if current.node_id == target.node_id:
            logger.info("re-homing stream %s: %s -> %s", stream_id, record.node_id, target.node_id)
            self._metrics.rehomes.inc()
            self._ledger.add(target.node_id)
        node = routing.find(cluster, current.node_id)
        if node is not None:
            try:
                await self._ensure_created(node, stream_id, current, token)
            except NodeUnavailableError as err:
                self._unavailable(node, err.reason)
                tried.add(node.node_id)
        return current

    async def _ensure_created(
        self, node: NodeRecord, stream_id: str, record: StreamRecord, token: str | None
    ) -> None:
        # The owner's token (checked against the record) builds it: the same claims, the
        # same owner on the new node.
        reply = await self._upstream.create_stream(
            node, record.resource, dumps(record.params), stream_id, token
        )
        if reply.status == 503:
            raise NodeUnavailableError(node.node_id, "503")
        if reply.status != 201:
            raise HttpError(
                502 if reply.status >= 500 else reply.status,
                f"node {node.node_id} refused to host stream {stream_id}: "
                f"{reply.body[:200].decode(errors='replace')}",
            )

    async def _forget_on(self, node: NodeRecord, stream_id: str) -> None:
        try:
            await self._upstream.request(node, "DELETE", f"/v1/streams/{segment(stream_id)}")
        except NodeUnavailableError:
            pass  # it expires there once idle anyway

    def _unavailable(self, node: NodeRecord, reason: str) -> None:
        logger.info("node %s unavailable: %s", node.node_id, reason)
        self._metrics.upstream_errors.labels(node.node_id).inc()


def _parse(stream_id: str) -> stream_ids.StreamId:
    try:
        return stream_ids.parse(stream_id)
    except InvalidStreamIdError as err:
        raise HttpError(404, f"unknown stream {stream_id[:120]!r}") from err


def _routed(choose: Callable[[], NodeRecord]) -> NodeRecord:
    try:
        node = choose()
    except NoNodeError as err:
        raise HttpError(503, str(err)) from err
    return node


async def _registry_call(awaitable: Awaitable[_T]) -> _T:
    try:
        return await awaitable
    except RegistryError as err:
        logger.warning("%s", err)
        raise HttpError(503, "the stream registry is unavailable") from err
