"""Clients of a cluster behind the proxy, for tests that break the cluster under them.

- `Watcher`: one SSE stream of the hackernews `posts` resource, followed like an EventSource
  does: on any end of the connection it reconnects to the same stream id with Last-Event-ID. It
  keeps the resource's state, and records what a client must never see: a 404 for its stream,
  or a version going backwards within one run.
- `Writer`: new posts and upvotes through the proxy, each retried with the same
  Idempotency-Key until acknowledged; what it acknowledged is the state every client must end
  up with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from broker.client import Init, decode_event
from broker.http.sse import SseParser
from broker.json_bytes import dumps, loads
from examples.hackernews import SEED_POSTS, SEED_UPVOTES, SEED_USERS

# A connection silent for this long is dead (nodes send a heartbeat every 30 s by default), as
# SkiffClient's idle_timeout_s does. A browser's EventSource has no such timeout: it relies on
# the proxy to end a relay whose node went silent (tests/deploy/test_compose.py counts how often
# this timeout had to step in).
IDLE_TIMEOUT_S = 45.0
RETRY_PAUSE_S = 0.3


def upvote_counts(entries: dict[bytes, list[Any]]) -> dict[str, int]:
    """{post id: upvotes} of a `posts` resource state."""
    return {value["id"]: value["upvotes"] for values in entries.values() for value in values}


@dataclass
class Watcher:
    http: httpx.AsyncClient
    params: dict[str, Any]
    stream_id: str = ""
    state: dict[bytes, list[Any]] = field(default_factory=dict)
    run: str | None = None
    version: int = -1
    last_event_id: str | None = None
    not_found: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connections: int = 0
    events: int = 0
    idle_timeouts: int = 0  # connections this client gave up on after IDLE_TIMEOUT_S of silence
    failure: str | None = None  # why `follow` stopped, if it did

    @property
    def node(self) -> str:
        """The follower the stream id names (the proxy encodes it before the dot)."""
        return self.stream_id.split(".", 1)[0]

    def upvotes(self) -> dict[str, int]:
        return upvote_counts(self.state)

    async def open(self, deadline_s: float = 60.0) -> None:
        response = await retry_until_ok(
            lambda: self.http.post("/v1/streams/posts", content=dumps(self.params)),
            deadline_s,
            self.statuses,
        )
        self.stream_id = response.text.strip()

    async def follow(self) -> None:
        """Read the stream until cancelled, reconnecting as an EventSource would."""
        try:
            while True:
                try:
                    await self._read_once()
                except httpx.ReadTimeout:
                    self.idle_timeouts += 1
                except httpx.TransportError:
                    pass
                await asyncio.sleep(RETRY_PAUSE_S)
        except Exception as err:  # a malformed event, a stream that cannot be reopened, ...
            self.failure = repr(err)
            raise

    async def _read_once(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(10.0, read=IDLE_TIMEOUT_S)
        async with self.http.stream(
            "GET", f"/v1/streams/{self.stream_id}", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                self.statuses[response.status_code] += 1
                if response.status_code == 404:
                    # Never acceptable; noted, then the client starts over so the test goes on.
                    self.not_found.append(f"{self.stream_id}: {response.text[:200]}")
                    self.last_event_id = None
                    await self.open()
                return
            self.connections += 1
            parser = SseParser()
            async for line in response.aiter_lines():
                message = parser.feed(line)
                if message is None:
                    continue
                event = decode_event(message)
                if event is not None:
                    self._apply(event)

    def _apply(self, event: Any) -> None:
        if event.run == self.run and event.version < self.version:
            self.regressions.append(f"{self.stream_id}: {self.version} -> {event.version}")
        if isinstance(event, Init):
            self.state = {}
        for key, values in event.entries:
            if values:
                self.state[dumps(key)] = values
            else:
                self.state.pop(dumps(key), None)
        self.run, self.version = event.run, event.version
        self.last_event_id = event.event_id
        self.events += 1


@dataclass
class Writer:
    http: httpx.AsyncClient
    prefix: str
    seed: int = 0
    posts: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(SEED_POSTS))
    votes: dict[str, str] = field(  # upvote id -> post id
        default_factory=lambda: {key: value["post"] for key, value in SEED_UPVOTES}
    )
    statuses: Counter[int] = field(default_factory=Counter)
    acknowledged: int = 0
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def expected(self) -> dict[str, int]:
        """{post id: upvotes} once every acknowledged write is applied."""
        counts = Counter(self.votes.values())
        return {post: counts[post] for post in self.posts}

    async def write_one(self, deadline_s: float = 90.0) -> None:
        """A new post (one write in four) or a new upvote, acknowledged before it returns."""
        n = next(self._numbers)
        if n % 4 == 0 or not self.posts:
            key = f"{self.prefix}-p{n}"
            value: dict[str, Any] = {"title": f"post {n}", "url": "", "author": "alice"}
            collection = "posts"
        else:
            key = f"{self.prefix}-v{n}"
            post = self._rng.choice(sorted(self.posts))
            value = {"post": post, "user": self._rng.choice(SEED_USERS)[0]}
            collection = "upvotes"
        body = dumps([[key, [value]]])
        headers = {"Idempotency-Key": f"{self.prefix}-{n}"}
        await retry_until_ok(
            lambda: self.http.patch(f"/v1/inputs/{collection}", content=body, headers=headers),
            deadline_s,
            self.statuses,
        )
        if collection == "posts":
            self.posts[key] = value
        else:
            self.votes[key] = value["post"]
        self.acknowledged += 1

    async def write(self, count: int) -> None:
        for _ in range(count):
            await self.write_one()

    async def load(self, stop: asyncio.Event, pause_s: float = 0.1) -> None:
        """Writes one after the other until `stop` is set (the one in flight completes)."""
        while not stop.is_set():
            await self.write_one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)


async def retry_until_ok(send: Any, deadline_s: float, statuses: Counter[int]) -> httpx.Response:
    """`await send()` until it answers 2xx; a 4xx other than 409/429 is a test failure."""
    give_up = time.monotonic() + deadline_s
    last = "no attempt"
    while time.monotonic() < give_up:
        try:
            response: httpx.Response = await send()
        except httpx.TransportError as err:
            last = repr(err)
        else:
            if response.is_success:
                return response
            statuses[response.status_code] += 1
            last = f"{response.status_code} {response.text[:200]}"
            if 400 <= response.status_code < 500 and response.status_code not in (409, 429):
                raise AssertionError(f"{response.request.url}: {last}")
        await asyncio.sleep(RETRY_PAUSE_S)
    raise AssertionError(f"not acknowledged within {deadline_s:g} s: {last}")


async def proxy_snapshot(http: httpx.AsyncClient) -> dict[str, int]:
    response = await http.post("/v1/snapshot/posts", content=dumps({"limit": 1000}))
    response.raise_for_status()
    return upvote_counts({dumps(key): values for key, values in loads(response.content)})
