"""WriteForwarder: `PATCH /v1/inputs/{collection}` to the lease holder, retried once across a
leader change.

A write is sent to the node holding the leader lease. When that fails — the leader cannot be
reached, fails mid-request, or answers 503 (a standby that lost the lease, or a leader that could
not make the write durable) — the proxy waits (up to `leader_wait_s`, longer than a takeover)
for the lease to change hands and sends the write once more to whoever holds it then.

Repeating a write is only safe when it cannot be applied twice:
- it never reached the old leader (connection refused): retried, with or without a key;
- it may have reached it (failed mid-request, or a 503): retried only with an
  `Idempotency-Key`, which the leaders record with the write's version, so the new leader
  answers the original version instead of applying it again. Without a key the client gets
  the node's 503, or a 502 saying the outcome is unknown when the connection failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from broker.http.access import USER_TOKEN_HEADER
from broker.http.errors import HttpError
from broker.store.node_record import NodeRecord
from proxy.cluster import routing
from proxy.cluster.membership import Cluster, Membership
from proxy.errors import NodeUnavailableError, NoNodeError
from proxy.metrics import ProxyMetrics
from proxy.upstream import Reply, Upstream, segment

logger = logging.getLogger("skiff.proxy")


class WriteForwarder:
    def __init__(
        self,
        membership: Membership,
        upstream: Upstream,
        metrics: ProxyMetrics,
        *,
        leader_wait_s: float,
    ) -> None:
        self._membership = membership
        self._upstream = upstream
        self._metrics = metrics
        self._leader_wait_s = leader_wait_s

    async def patch(
        self,
        collection: str,
        body: bytes,
        idempotency_key: str | None,
        user_token: str | None = None,
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if user_token is not None:
            # The leader checks the user's scope again (broker/http/access.py).
            headers[USER_TOKEN_HEADER] = user_token
        path = f"/v1/inputs/{segment(collection)}"

        holder, leader = await self._leader(lambda cluster: True)
        failure = await self._attempt(
            leader, path, body, headers, retryable=idempotency_key is not None
        )
        if isinstance(failure, Reply):
            self._upstream.acknowledged(failure)
            return failure
        if failure.reached and idempotency_key is None:
            raise HttpError(
                502,
                f"the leader failed while handling the write ({failure.reason}); it may or may "
                "not have been applied (send an Idempotency-Key to make writes retryable)",
            )
        self._metrics.write_retries.inc()
        logger.info("retrying a write after leader %s failed: %s", leader.node_id, failure.reason)
        _, leader = await self._leader(lambda cluster: cluster.holder != holder)
        second = await self._attempt(leader, path, body, headers, retryable=True)
        if isinstance(second, Reply):
            self._upstream.acknowledged(second)
            return second
        raise HttpError(503, f"the leader is unavailable: {second.reason}")

    async def _attempt(
        self,
        leader: NodeRecord,
        path: str,
        body: bytes,
        headers: dict[str, str],
        *,
        retryable: bool,
    ) -> Reply | NodeUnavailableError:
        try:
            reply = await self._upstream.request(
                leader, "PATCH", path, content=body, headers=headers
            )
        except NodeUnavailableError as err:
            self._metrics.upstream_errors.labels(leader.node_id).inc()
            return err
        if reply.status == 503 and retryable:
            # Not acknowledged: a standby that lost the lease, or a leader that could not make
            # the write durable. Only a keyed write is retried: without a key the node's own
            # answer is relayed.
            self._metrics.upstream_errors.labels(leader.node_id).inc()
            text = reply.body[:200].decode(errors="replace")
            return NodeUnavailableError(leader.node_id, f"503 {text}", reached=True)
        return reply

    async def _leader(self, changed: Callable[[Cluster], bool]) -> tuple[str | None, NodeRecord]:
        """The lease holder and its node, waiting up to `leader_wait_s` for one satisfying
        `changed`; after that, whichever leader there is."""

        def acceptable(cluster: Cluster) -> bool:
            return _writable(cluster) and changed(cluster)

        cluster = await self._membership.wait_for(acceptable, self._leader_wait_s)
        cluster = cluster or self._membership.cluster
        try:
            return cluster.holder, routing.choose_writer(cluster)
        except NoNodeError as err:
            raise HttpError(503, str(err)) from err


def _writable(cluster: Cluster) -> bool:
    leader = cluster.leader
    return leader is not None and leader.url is not None and leader.role == "leader"
