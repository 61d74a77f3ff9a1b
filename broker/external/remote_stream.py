"""One subscription to a resource of a Skip-protocol service: its stream id, its event stream,
and its reconnects (docs/protocol.md's client side, for broker/external/skip.py).

The stream is created with `POST {control_url}/v1/streams/{resource}` and read with
`GET {url}/v1/streams/{id}`: `init` replaces the whole content, `update` changes the keys it
names, an `update` without id is a heartbeat, and `error` is a failure the server reports
before ending the stream. When the connection ends or fails, it reconnects with `Last-Event-ID`
(the server answers an `update` or a fresh `init`); when the stream id is gone (404: expired,
deleted, or the server restarted) it creates a new stream, whose `init` replaces the content.
Until the first `init` any failure is final (`established` holds it); after it, failures go to
`callbacks.error` and the loop carries on, with capped exponential delays between attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from broker.external.errors import (
    ExternalFetchError,
    ExternalServiceError,
    ExternalStreamError,
    UnknownExternalResourceError,
)
from broker.http.sse import SseMessage, SseParser
from broker.json_bytes import JsonDecodeError, dumps, loads
from broker.runtime.backoff import Backoff
from broker.types import Entry, Json
from graph.external import ExternalCallbacks


@dataclass(frozen=True, slots=True)
class StreamSettings:
    url: str
    control_url: str
    headers: Mapping[str, str]
    timeout_s: float
    idle_timeout_s: float | None
    max_reconnect_delay_s: float


class RemoteStream:
    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: StreamSettings,
        resource: str,
        params: Json,
        callbacks: ExternalCallbacks,
    ) -> None:
        self.http = http
        self.settings = settings
        self.resource = resource
        self.params = params
        self.callbacks = callbacks
        #: Settles with the first `init` delivered (or the failure that came first).
        self.established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stream_id: str | None = None
        self.last_event_id: str | None = None
        self._backoff = Backoff(first=0.05, cap=settings.max_reconnect_delay_s)

    def stopped(self) -> None:
        """Unsubscribed: a subscribe still waiting returns (the task is cancelled apart)."""
        if not self.established.done():
            self.established.set_result(None)

    async def run(self) -> None:
        try:
            await self._follow()
        except Exception as err:
            if self.established.done():
                raise  # a failure of the callbacks: the supervisor reports it
            self.established.set_exception(err)

    async def _follow(self) -> None:
        while True:
            try:
                if self.stream_id is None:
                    self.stream_id = await self.create()
                    self.last_event_id = None
                await self._read()
                failure: ExternalServiceError | None = None
            except ExternalServiceError as err:
                failure = err
            if not self.established.done():
                raise failure or ExternalStreamError(
                    f"stream {self.stream_id} of {self.resource!r} ended before its init"
                )
            if isinstance(failure, ExternalFetchError) and failure.status == 404:
                self.stream_id = None
            if failure is not None:
                self.callbacks.error(failure)
            await asyncio.sleep(self._backoff.next())

    async def create(self) -> str:
        """A new stream id for the resource and params."""
        url = f"{self.settings.control_url}/v1/streams/{quote(self.resource, safe='')}"
        headers = {"Content-Type": "application/json", **self.settings.headers}
        try:
            response = await self.http.post(
                url, content=dumps(self.params), headers=headers, timeout=self.settings.timeout_s
            )
        except httpx.HTTPError as err:
            raise ExternalFetchError(f"POST {url}: {err!r}") from err
        if response.status_code == 404:
            raise UnknownExternalResourceError(
                f"{self.settings.control_url} has no resource {self.resource!r}: "
                f"{_reason(response)}"
            )
        if not response.is_success:
            raise ExternalFetchError(
                f"POST {url}: {response.status_code} {_reason(response)}",
                status=response.status_code,
            )
        return response.text.strip()

    async def _read(self) -> None:
        """One connection: returns when the server ends it, raises when it fails."""
        url = f"{self.settings.url}/v1/streams/{self.stream_id}"
        headers = {"Accept": "text/event-stream", **self.settings.headers}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(self.settings.timeout_s, read=self.settings.idle_timeout_s)
        try:
            async with self.http.stream("GET", url, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise ExternalFetchError(
                        f"GET {url}: {response.status_code} {_reason(response)}",
                        status=response.status_code,
                    )
                parser = SseParser()
                async for line in response.aiter_lines():
                    message = parser.feed(line)
                    if message is not None:
                        self._dispatch(message)
        except httpx.HTTPError as err:
            raise ExternalFetchError(f"GET {url}: {err!r}") from err

    def _dispatch(self, message: SseMessage) -> None:
        if message.event == "error":
            failure = ExternalStreamError(f"the server reported: {_error_text(message.data)}")
            if not self.established.done():
                raise failure
            self.callbacks.error(failure)
            return
        if message.event not in ("init", "update"):
            return  # not an event of the protocol: ignored, as EventSource would
        if message.id is None and message.event == "update":
            return  # a heartbeat
        entries = _entries(message.data)
        if message.id is not None:
            self.last_event_id = message.id
        self._backoff.reset()
        if message.event == "init":
            self.callbacks.update(entries, True)
            if not self.established.done():
                self.established.set_result(None)
        elif entries:
            # An empty update with an id: a resume that found nothing changed.
            self.callbacks.update(entries, False)


def _entries(data: str) -> list[Entry]:
    try:
        raw = loads(data)
    except JsonDecodeError as err:
        raise ExternalStreamError(f"malformed event data: {err}") from err
    if not isinstance(raw, list):
        raise ExternalStreamError(f"event data is not a list of entries: {data[:200]!r}")
    entries: list[Entry] = []
    for item in raw:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            raise ExternalStreamError(f"malformed entry in event data: {item!r:.200}")
        entries.append((item[0], item[1]))
    return entries


def _error_text(data: str) -> str:
    try:
        value = loads(data)
    except JsonDecodeError:
        return data
    if isinstance(value, dict) and "error" in value:
        return str(value["error"])
    return value if isinstance(value, str) else data


def _reason(response: httpx.Response) -> str:
    """The message of an error answer: skiff's `{"error": ...}`, Skip's JSON string, or text."""
    text = _error_text(response.text)[:300] if response.content else ""
    return text or response.reason_phrase
