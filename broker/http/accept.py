"""The one `Accept` rule of `GET /v1/streams/{id}`, applied by nodes and the proxy alike.

It is the rule of Skip's server, Express's `req.accepts("text/event-stream")` (the `negotiator`
package): no `Accept` header, or an empty one, accepts; otherwise the most specific item that
matches — `text/event-stream`, then `text/*`, then `*/*` — decides, by its quality (`q=0`
refuses). So `Accept: */*` (what Skip's Flask app and most HTTP libraries send) is served, and
`Accept: text/event-stream;q=0, */*` is not. One difference, on the lenient side: an item with
media-type parameters (`text/event-stream; charset=utf-8`) matches here, where negotiator would
skip it.
"""

from __future__ import annotations


def accepts_event_stream(accept: str) -> bool:
    """Whether an Accept header value (`""` when absent) admits `text/event-stream`."""
    if not accept.strip():
        return True
    best: tuple[int, float] | None = None
    for item in accept.split(","):
        media, *options = (part.strip() for part in item.split(";"))
        kind, _, subtype = media.lower().partition("/")
        if kind == "text":
            specificity = 2 if subtype == "event-stream" else 1 if subtype == "*" else -1
        elif kind == "*" and subtype == "*":
            specificity = 0
        else:
            specificity = -1
        if specificity < 0:
            continue
        quality = _quality(options)
        if best is None or (specificity, quality) > best:
            best = (specificity, quality)
    return best is not None and best[1] > 0


def _quality(options: list[str]) -> float:
    for option in options:
        name, _, value = option.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0  # negotiator reads a malformed q as 0 too
    return 1.0
