"""The Accept rule of stream reads is Skip's (Express's `req.accepts`, negotiator): the most
specific matching item decides by its quality; no header accepts."""

from __future__ import annotations

import pytest

from broker.http.accept import accepts_event_stream


@pytest.mark.parametrize(
    ("accept", "served"),
    [
        ("", True),  # no Accept header (or an empty one)
        ("   ", True),
        ("text/event-stream", True),
        ("TEXT/Event-Stream", True),
        ("*/*", True),  # Skip's Flask app following a 307, curl, most libraries
        ("text/*", True),
        ("application/json, */*;q=0.1", True),
        ("text/event-stream; charset=utf-8", True),  # lenient: negotiator would skip it
        ("application/json", False),
        ("text/html", False),
        ("text/event-stream;q=0", False),
        ("text/event-stream;q=0.0, */*", False),  # the specific item decides
        ("text/*;q=0, */*", False),
        ("text/*;q=0, text/event-stream", True),
        ("*/*;q=0", False),
        ("text/event-stream;q=oops", False),  # a malformed quality is 0, as in negotiator
        ("application/*", False),
    ],
)
def test_skips_rule(accept: str, served: bool) -> None:
    assert accepts_event_stream(accept) is served
