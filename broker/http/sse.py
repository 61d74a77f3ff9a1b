"""The SSE wire format of docs/protocol.md: a pure encoder and an incremental line parser.

Every event carries its data on a single `data:` line: compact JSON never contains a raw newline
(newlines inside strings are escaped), so no event needs splitting.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from broker.errors import ConfigError
from broker.json_bytes import dumps
from broker.types import Entry

Kind = Literal["init", "update"]

# Skip's heartbeat: an empty update without an id, so it never moves a client's Last-Event-ID.
HEARTBEAT: Final = b"event: update\ndata: []\n\n"

_RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_run_id() -> str:
    """A fresh random run id (64 bits): one per process start of a single node."""
    return secrets.token_hex(8)


def check_run_id(run: str) -> str:
    """Return `run` if it can appear in an event id, else raise ConfigError."""
    if not _RUN_ID.fullmatch(run):
        raise ConfigError(f"run id must match {_RUN_ID.pattern}, got {run!r}")
    return run


def format_event_id(run: str, version: int) -> str:
    return f"{run}/{version}"


def parse_event_id(value: str) -> tuple[str, int] | None:
    """`(run, version)` from `<run>/<version>`, or None when the id is not one of ours."""
    run, sep, version = value.strip().rpartition("/")
    if not sep or not run or not version.isascii() or not version.isdigit():
        return None
    return run, int(version)


def encode_error(message: str) -> bytes:
    """An `error` event: the stream ends on a failure of the server's (e.g. a resource that
    cannot be built any more). EventSource hands it to its `error` listeners."""
    return b"event: error\ndata: %s\n\n" % dumps({"error": message})


def encode_entries(entries: Sequence[Entry]) -> bytes:
    return dumps(entries)


def encode_event(kind: Kind, run: str, version: int, entries: Sequence[Entry]) -> bytes:
    return encode_raw_event(kind, run, version, encode_entries(entries))


def encode_raw_event(kind: Kind, run: str, version: int, data: bytes) -> bytes:
    """An event whose data is already-encoded JSON."""
    return b"event: %s\nid: %s/%d\ndata: %s\n\n" % (kind.encode(), run.encode(), version, data)


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One dispatched SSE event, as a client sees it."""

    event: str
    data: str
    id: str | None = None


class SseParser:
    """Turns the lines of an event stream (terminators stripped) into messages.

    Follows the WHATWG rules that matter here: a blank line dispatches, `:` starts a comment, a
    single space after the colon is dropped, several `data` lines join with newlines, a line with
    no data dispatches nothing, and the event type defaults to `message`.
    """

    __slots__ = ("_data", "_event", "_id")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> SseMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseMessage | None:
        data, event, event_id = self._data, self._event, self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return SseMessage(event=event or "message", data="\n".join(data), id=event_id)
