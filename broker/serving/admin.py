"""`GET /v1/admin/state`: what a node holds, as checksums cluster tests compare across nodes.

Every node (leader or follower) answers

    {"node": id, "role": "leader", "epoch": "...", "version": 42,
     "checksums": {"<shared collection>": "<16 hex digits>", ...}}

A checksum is order-independent: the sum mod 2**64 of the 64-bit BLAKE2b digest of each entry's
canonical JSON (`[key, [values...]]`, object members sorted). A leader and a follower at the
same version hold equal shared collections exactly when their checksums agree (barring a
collision), whatever order their engines keep keys in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.errors import UnavailableError
from broker.serving.hub import Hub
from broker.serving.settle import settled
from broker.types import Entry, Json
from graph import Engine

_MASK: Final = (1 << 64) - 1


def entry_digest(key: Json, values: list[Json]) -> int:
    """The 64-bit digest of one entry's canonical JSON."""
    try:
        data = orjson.dumps([key, values], option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits (see broker.json_bytes).
        data = json.dumps([key, values], sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def collection_checksum(entries: Iterable[Entry]) -> str:
    """The order-independent checksum of a collection's entries, as 16 hex digits."""
    total = 0
    for key, values in entries:
        total = (total + entry_digest(key, values)) & _MASK
    return f"{total:016x}"


def checksums(engine: Engine) -> dict[str, str]:
    """The checksum of every shared collection of `engine` (a leader's or a follower's)."""
    return {
        name: collection_checksum(engine.collection_items(name))
        for name in sorted(engine.shared_names)
    }


def admin_routes(
    hub: Hub | Callable[[], Hub | None],
    role: str | Callable[[], str],
    epoch: Callable[[], str | None],
    *,
    node_id: str,
) -> list[Route]:
    """The admin routes of a node.

    `hub`: the node's hub, or a function returning the current one (None while the node holds
    no state, e.g. a standby leader candidate: the route then answers 503). `role`: the role
    name, or a function returning it. `epoch`: the replication epoch the state belongs to.
    """

    def current_hub() -> Hub | None:
        return hub if isinstance(hub, Hub) else hub()

    async def state(request: Request) -> Response:
        role_name = role if isinstance(role, str) else role()
        target = current_hub()
        if target is None:
            return JSONResponse(
                {"error": f"{role_name} {node_id} holds no state", "node": node_id},
                status_code=503,
            )
        engine = target.engine
        try:
            await settled(engine)
        except UnavailableError as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        return JSONResponse(
            {
                "node": node_id,
                "role": role_name,
                "epoch": epoch(),
                "version": engine.version,
                "checksums": checksums(engine),
            }
        )

    return [Route("/v1/admin/state", state, methods=["GET"])]
