"""The protocol's paths and headers that both nodes and the proxy parse."""

from __future__ import annotations

from typing import Final

STREAMS_PREFIX: Final = "/v1/streams/"
#: Header by which the proxy creates a stream under an id of its choosing (proxy/streams.py).
STREAM_ID_HEADER: Final = "X-Skiff-Stream-Id"
#: Header by which the proxy asks a node to answer a read (snapshot, lookup, a new stream) only
#: once it has applied this version: the newest write the proxy relayed, so that a client
#: reads its own writes whichever follower answers (broker/serving/reads.py).
AFTER_VERSION_HEADER: Final = "X-Skiff-After-Version"


def stream_read_id(path: str) -> str | None:
    """The stream id of a `GET /v1/streams/{stream_id}` path, or None for any other path."""
    # The route template's `{stream_id}`: one non-empty path segment.
    if not path.startswith(STREAMS_PREFIX):
        return None
    stream_id = path[len(STREAMS_PREFIX) :]
    return stream_id if stream_id and "/" not in stream_id else None
