"""The one `Accept` rule of `GET /v1/streams/{id}`, applied by nodes and the proxy alike."""

from __future__ import annotations


def accepts_event_stream(accept: str) -> bool:
    """Whether an Accept header value admits `text/event-stream` (not with q=0)."""
    for item in accept.split(","):
        media, *options = (part.strip() for part in item.split(";"))
        if media.lower() != "text/event-stream":
            continue
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q" and _zero(value):
                return False
        return True
    return False


def _zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False
