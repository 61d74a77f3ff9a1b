"""Helpers shared by the broker tests."""

from __future__ import annotations

from typing import Any

from broker.client import StreamEvent, decode_event
from broker.http.sse import SseParser

Entry = tuple[Any, list[Any]]


def decode_chunk(chunk: bytes) -> StreamEvent | None:
    """The one event of an SSE chunk (None for a heartbeat)."""
    parser = SseParser()
    messages = [m for m in map(parser.feed, chunk.decode().split("\n")) if m is not None]
    assert len(messages) == 1, messages
    return decode_event(messages[0])


def apply_update(state: dict[Any, list[Any]], entries: list[Entry]) -> dict[Any, list[Any]]:
    """A client's view after an update ([] removes the key)."""
    out = dict(state)
    for key, values in entries:
        if values:
            out[key] = values
        else:
            out.pop(key, None)
    return out


def vote(post: int, user: str) -> list[dict[str, Any]]:
    return [{"post": post, "user": user}]
