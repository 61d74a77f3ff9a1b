"""PolledExternalService: an HTTP JSON API kept up to date by polling (Skip's
`PolledExternalService` with its `PolledHTTPResource`s).

Each resource name has a spec: the URL, how often to poll, and `conv`, which turns the decoded
response into entries. Subscribing fetches `url + encode_params(params)` once and delivers the
entries as the whole content; then every `interval_s` it fetches again and delivers the whole
content again (`is_init`: keys gone from the response are deleted). A failed poll (an error
status, no answer within `timeout_s`, a body that is not JSON, `conv` raising) goes to
`callbacks.error` and the next poll happens as usual.

Skip 0.0.15 delivers the polls after the first with `isInit` false, so there a key that vanishes
from the API stays in the collection; here it is deleted, as Skip's earlier versions did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from broker.errors import ConfigError
from broker.external.errors import (
    ExternalFetchError,
    ExternalServiceError,
    UnknownExternalResourceError,
)
from broker.external.params import default_param_encoder
from broker.external.subscriptions import SubscriptionTasks
from broker.json_bytes import JsonDecodeError, loads
from broker.types import Entry, Json
from graph.external import ExternalCallbacks, ExternalService

Conv = Callable[[Json], list[Entry]]


@dataclass(frozen=True, slots=True)
class PolledHTTPResource:
    """One endpoint and how to poll it. The URL fetched is `url + encode_params(params)`; the
    encoder may put some params in the path, before its own `?`."""

    url: str
    interval_s: float
    conv: Conv
    encode_params: Callable[[Json], str] = default_param_encoder
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ConfigError(f"interval_s must be positive, got {self.interval_s!r}")
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be positive, got {self.timeout_s!r}")


class PolledExternalService(ExternalService):
    """External resources served by polling HTTP endpoints, one spec per resource name."""

    def __init__(self, resources: Mapping[str, PolledHTTPResource]) -> None:
        self.resources = dict(resources)
        self._http: httpx.AsyncClient | None = None
        self._polls = SubscriptionTasks("polled external service")
        # Subscriptions between their first fetch and their poll loop, each with a token of its
        # own: an unsubscribe, or a newer subscribe under the same name, takes the name away.
        self._starting: dict[str, object] = {}

    async def subscribe(
        self, instance: str, resource: str, params: Json, callbacks: ExternalCallbacks
    ) -> None:
        spec = self.resources.get(resource)
        if spec is None:
            raise UnknownExternalResourceError(f"unknown resource named {resource!r}")
        url = spec.url + spec.encode_params(params)
        self.unsubscribe(instance)
        token = self._starting[instance] = object()
        try:
            entries = await self._poll(spec, url)
            if self._starting.get(instance) is not token:
                return  # unsubscribed (or shut down) while the first fetch was on its way
            callbacks.update(entries, True)
        finally:
            if self._starting.get(instance) is token:
                del self._starting[instance]
        self._polls.start(instance, self._keep_polling(spec, url, callbacks))

    def unsubscribe(self, instance: str) -> None:
        self._starting.pop(instance, None)
        self._polls.stop(instance)

    async def shutdown(self) -> None:
        self._starting.clear()
        await self._polls.aclose(cleanup_timeout_s=0)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def _keep_polling(
        self, spec: PolledHTTPResource, url: str, callbacks: ExternalCallbacks
    ) -> None:
        while True:
            await asyncio.sleep(spec.interval_s)
            try:
                entries = await self._poll(spec, url)
            except ExternalServiceError as err:
                callbacks.error(err)
                continue
            callbacks.update(entries, True)

    async def _poll(self, spec: PolledHTTPResource, url: str) -> list[Entry]:
        """One fetch, decoded and converted; any failure is an ExternalServiceError."""
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)  # as Skip's fetch does
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(spec.headers)
        try:
            response = await self._http.get(url, headers=headers, timeout=spec.timeout_s)
        except httpx.HTTPError as err:
            raise ExternalFetchError(f"GET {url}: {err!r}") from err
        if not response.is_success:
            raise ExternalFetchError(
                f"GET {url}: {response.status_code} {response.reason_phrase}",
                status=response.status_code,
            )
        try:
            # Skip's fetchJSON: an empty body is null, and conv is given [] for null.
            data = loads(response.content) if response.content else None
        except JsonDecodeError as err:
            raise ExternalFetchError(f"GET {url}: the body is not JSON: {err}") from err
        try:
            return [(key, list(values)) for key, values in spec.conv([] if data is None else data)]
        except Exception as err:
            raise ExternalServiceError(f"GET {url}: conv did not make entries: {err!r}") from err
