"""Stream ids minted by the proxy: `<node id>.<22 base64url characters>`.

The prefix names the follower that first hosted the stream, so a proxy can route a GET even
without the registry; the suffix is 16 random bytes (128 bits, above the 122 of a UUIDv4), so
an id is a capability nobody can guess. After a re-homing the registry, not the prefix, says
where the stream lives; the id itself never changes.

Ids appear in URL paths and Redis key names, so both parts are restricted to characters that
need no escaping in either, and parsing is strict: exactly one canonical encoding per id.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Final

from proxy.errors import InvalidStreamIdError

RANDOM_BYTES: Final = 16
_SUFFIX_CHARS: Final = 22  # ceil(16 * 8 / 6), unpadded
# Hostnames, StatefulSet pod names and compose replica names all fit; a node id outside this
# set cannot host proxied streams (membership reports it).
NODE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_SUFFIX_PATTERN: Final = re.compile(rf"[A-Za-z0-9_\-]{{{_SUFFIX_CHARS}}}")


@dataclass(frozen=True, slots=True)
class StreamId:
    node_id: str
    token: bytes

    def __str__(self) -> str:
        suffix = base64.urlsafe_b64encode(self.token).rstrip(b"=").decode()
        return f"{self.node_id}.{suffix}"


def can_host(node_id: str) -> bool:
    """Whether a node id can appear in a stream id."""
    return NODE_ID_PATTERN.fullmatch(node_id) is not None


def mint(node_id: str) -> str:
    """A fresh stream id hosted by `node_id`."""
    if not can_host(node_id):
        raise InvalidStreamIdError(f"node id {node_id!r} cannot appear in a stream id")
    return str(StreamId(node_id, secrets.token_bytes(RANDOM_BYTES)))


def parse(stream_id: str) -> StreamId:
    """The node and random part of an id; InvalidStreamIdError unless `mint` could return it."""
    node_id, dot, suffix = stream_id.rpartition(".")
    if not dot or not can_host(node_id) or not _SUFFIX_PATTERN.fullmatch(suffix):
        raise InvalidStreamIdError(f"not a stream id: {stream_id[:120]!r}")
    try:
        token = base64.urlsafe_b64decode(suffix + "==")
    except (binascii.Error, ValueError) as err:
        raise InvalidStreamIdError(f"not a stream id: {stream_id[:120]!r}") from err
    parsed = StreamId(node_id, token)
    # 22 characters carry 132 bits: the last one's spare bits must be zero, or two spellings
    # would name the same stream.
    if len(token) != RANDOM_BYTES or str(parsed) != stream_id:
        raise InvalidStreamIdError(f"not a stream id: {stream_id[:120]!r}")
    return parsed
