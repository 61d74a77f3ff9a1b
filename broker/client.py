"""SkiffClient: an async client of docs/protocol.md, over httpx.

`events()` yields typed events and hides reconnects: when a stream's connection ends or fails,
it reconnects with `Last-Event-ID` set to the last event it yielded, so the server answers with
one update holding what changed meanwhile (or a fresh `Init` when it cannot). Heartbeats are
consumed silently, never yielded; an `Update` with no entries is only yielded when it carries an
id (a resume that found nothing changed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from types import TracebackType

import httpx

from broker.errors import (
    ClientError,
    StreamDisconnectedError,
    StreamNotFoundError,
    StreamProtocolError,
)
from broker.http.sse import SseMessage, SseParser, format_event_id, parse_event_id
from broker.json_bytes import JsonDecodeError, dumps, loads
from broker.types import Entry, Json


@dataclass(frozen=True, slots=True)
class Init:
    """The whole resource at `version`."""

    run: str
    version: int
    entries: list[Entry]

    @property
    def event_id(self) -> str:
        return format_event_id(self.run, self.version)


@dataclass(frozen=True, slots=True)
class Update:
    """The keys that changed up to `version`, with their new values ([] = removed)."""

    run: str
    version: int
    entries: list[Entry]

    @property
    def event_id(self) -> str:
        return format_event_id(self.run, self.version)


StreamEvent = Init | Update


def decode_event(message: SseMessage) -> StreamEvent | None:
    """The typed event of an SSE message; None for a heartbeat (an update without id). An
    `error` event (the server ended the stream on a failure) raises StreamDisconnectedError."""
    if message.event == "error":
        try:
            reason = str(loads(message.data)["error"])
        except (JsonDecodeError, TypeError, KeyError):
            reason = message.data
        raise StreamDisconnectedError(f"the server ended the stream: {reason}")
    if message.event not in ("init", "update"):
        raise StreamProtocolError(f"unexpected SSE event type {message.event!r}")
    if message.id is None:
        if message.event == "update":
            return None
        raise StreamProtocolError("init event without an id")
    parsed = parse_event_id(message.id)
    if parsed is None:
        raise StreamProtocolError(f"malformed event id {message.id!r}")
    try:
        raw = loads(message.data)
        entries = [(key, list(values)) for key, values in raw]
    except (JsonDecodeError, TypeError, ValueError) as err:
        raise StreamProtocolError(f"malformed event data: {err}") from err
    kind = Init if message.event == "init" else Update
    return kind(run=parsed[0], version=parsed[1], entries=entries)


class SkiffClient:
    """Talks to one node (or the proxy). `control_url` is for a node with split routes."""

    def __init__(
        self,
        base_url: str,
        *,
        control_url: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._stream_http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, transport=transport, headers=headers
        )
        self._control_http = (
            self._stream_http
            if control_url is None
            else httpx.AsyncClient(
                base_url=control_url, timeout=timeout, transport=transport, headers=headers
            )
        )

    async def __aenter__(self) -> SkiffClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._stream_http.aclose()
        if self._control_http is not self._stream_http:
            await self._control_http.aclose()

    # -- control -----------------------------------------------------------------------------
    async def snapshot(self, resource: str, params: Json = None) -> list[Entry]:
        raw = await self._call("POST", f"/v1/snapshot/{resource}", _params(params))
        return [(key, values) for key, values in raw]

    async def lookup(self, resource: str, key: Json, params: Json = None) -> list[Json]:
        body = {"key": key, "params": _params(params)}
        values: list[Json] = await self._call("POST", f"/v1/snapshot/{resource}/lookup", body)
        return values

    async def patch(
        self,
        collection: str,
        entries: Sequence[Entry] | Sequence[list[Json]],
        idempotency_key: str | None = None,
    ) -> int:
        """Replace the values of each listed key; returns the version of the write's tick.

        `idempotency_key` is sent as the `Idempotency-Key` header; a single node does not
        deduplicate on it (only a replicated leader can).
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        reply = await self._call("PATCH", f"/v1/inputs/{collection}", list(entries), headers)
        version: int = reply["version"]
        return version

    async def delete_key(self, collection: str, key: Json) -> int:
        return await self.patch(collection, [(key, [])])

    async def create_stream(self, resource: str, params: Json = None) -> str:
        response = await self._send(
            self._control_http, "POST", f"/v1/streams/{resource}", _params(params)
        )
        return response.text

    async def delete_stream(self, stream_id: str) -> None:
        await self._send(
            self._control_http, "DELETE", f"/v1/streams/{stream_id}", not_found=StreamNotFoundError
        )

    # -- streams -----------------------------------------------------------------------------
    async def events(
        self,
        stream_id: str,
        *,
        last_event_id: str | None = None,
        reconnect: bool = True,
        max_attempts: int = 10,
        backoff_s: float = 0.05,
        idle_timeout_s: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """The stream's events. On a dropped connection it reconnects (up to `max_attempts`
        consecutive failures, doubling `backoff_s` up to 2 s) and resumes from the last event;
        an unknown stream raises StreamNotFoundError. `idle_timeout_s` (a few heartbeats) bounds
        how long a silent connection is trusted."""
        failures = 0
        while True:
            # aclosing: when our caller stops early, the connection closes now, not at GC.
            reading = self._read_stream(stream_id, last_event_id, idle_timeout_s)
            try:
                async with aclosing(reading):
                    async for event in reading:
                        failures = 0
                        last_event_id = event.event_id
                        yield event
                error: Exception | None = None
            except httpx.TransportError as err:
                error = err
            if not reconnect:
                if error is None:
                    return
                raise StreamDisconnectedError(f"stream {stream_id}: {error!r}") from error
            failures += 1
            if failures > max_attempts:
                raise StreamDisconnectedError(
                    f"stream {stream_id}: gave up after {max_attempts} reconnects"
                ) from error
            await asyncio.sleep(min(backoff_s * 2 ** (failures - 1), 2.0))

    async def _read_stream(
        self, stream_id: str, last_event_id: str | None, idle_timeout_s: float | None
    ) -> AsyncGenerator[StreamEvent, None]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self._stream_http.timeout.connect, read=idle_timeout_s)
        async with self._stream_http.stream(
            "GET", f"/v1/streams/{stream_id}", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise _error(response, StreamNotFoundError)
            parser = SseParser()
            async for line in response.aiter_lines():
                message = parser.feed(line)
                if message is not None:
                    event = decode_event(message)
                    if event is not None:
                        yield event

    # -- plumbing ----------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        body: Json = None,
        headers: dict[str, str] | None = None,
    ) -> Json:
        response = await self._send(self._control_http, method, path, body, headers)
        return loads(response.content) if response.content else None

    @staticmethod
    async def _send(
        http: httpx.AsyncClient,
        method: str,
        path: str,
        body: Json = None,
        headers: dict[str, str] | None = None,
        not_found: type[ClientError] = ClientError,
    ) -> httpx.Response:
        content = None if body is None else dumps(body)
        all_headers = {"Content-Type": "application/json"} if content is not None else {}
        all_headers.update(headers or {})
        response = await http.request(method, path, content=content, headers=all_headers)
        if response.status_code >= 400:
            raise _error(response, not_found)
        return response


def _params(params: Json) -> Json:
    return {} if params is None else params


def _error(response: httpx.Response, not_found: type[ClientError]) -> ClientError:
    try:
        message = str(loads(response.content)["error"])
    except (JsonDecodeError, TypeError, KeyError):
        message = response.text or response.reason_phrase
    kind = not_found if response.status_code == 404 else ClientError
    return kind(response.status_code, message)
