"""The chaos runs' clients, all through the proxy: writers that record every acknowledged write,
readers that hold an SSE stream, record every event and check ordering as they go."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

RESOURCE = "top"
PARAMS = {"limit": 100}
POSTS = 20


@dataclass
class Ack:
    key: str
    posts: list[int]
    at: float  # time.monotonic() of the acknowledgement
    version: int


@dataclass
class WriterLog:
    acked: list[Ack] = field(default_factory=list)
    unknown: Counter[int] = field(default_factory=Counter)  # votes whose outcome is unknown
    attempts: int = 0
    retries: int = 0

    def acked_votes(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for ack in self.acked:
            counts.update(ack.posts)
        return counts


async def writer(
    url: str, log: WriterLog, name: str, seed: int, stop: asyncio.Event, batch: int = 3
) -> None:
    """Batches of new votes with an Idempotency-Key, each retried with the same key until it is
    acknowledged or 12 s pass (then its outcome is recorded as unknown)."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=5.0) as http:
        n = 0
        while not stop.is_set():
            n += 1
            posts = [rng.randrange(POSTS) for _ in range(batch)]
            key = f"{name}-{n}"
            body = [[f"{key}-{i}", [{"post": p}]] for i, p in enumerate(posts)]
            deadline = time.monotonic() + 12
            acked = False
            while time.monotonic() < deadline:
                log.attempts += 1
                try:
                    r = await http.patch(
                        f"{url}/v1/inputs/votes", json=body, headers={"Idempotency-Key": key}
                    )
                    if r.status_code == 200:
                        log.acked.append(Ack(key, posts, time.monotonic(), r.json()["version"]))
                        acked = True
                        break
                except httpx.HTTPError:
                    pass
                log.retries += 1
                await asyncio.sleep(0.1 + rng.random() * 0.3)
            if not acked:
                log.unknown.update(posts)
            await asyncio.sleep(rng.random() * 0.05)


@dataclass
class ReaderLog:
    name: str
    stream_id: str = ""
    run: str = ""
    version: int = -1
    state: dict[str, Any] = field(default_factory=dict)  # json key -> values
    events: int = 0
    inits: int = 0
    reconnects: int = 0
    runs_seen: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # stream ids that answered 404
    violations: list[str] = field(default_factory=list)

    def votes(self) -> dict[int, int]:
        return {v[0]["post"]: v[0]["votes"] for v in self.state.values() if v}

    def apply(self, event: str, event_id: str | None, data: str) -> None:
        entries = json.loads(data)
        if event_id is None:  # heartbeat: `update` with `[]` and no id
            return
        run, _, version_text = event_id.rpartition("/")
        version = int(version_text)
        before = self.votes()
        same_run = run == self.run
        if same_run and version < self.version:
            self.violations.append(
                f"{self.name}: version went back {self.version} -> {version} in run {run}"
            )
        if event == "init":
            self.inits += 1
            self.state = {}
        for key, values in entries:
            k = json.dumps(key, sort_keys=True)
            if values:
                self.state[k] = values
            else:
                self.state.pop(k, None)
        if same_run:
            after = self.votes()
            for post, votes in before.items():
                if after.get(post, 0) < votes:
                    self.violations.append(
                        f"{self.name}: post {post} reverted {votes} -> {after.get(post, 0)} "
                        f"at {run}/{version}"
                    )
        if run != self.run:
            self.runs_seen.append(run)
        self.run, self.version = run, version
        self.events += 1


async def reader(url: str, log: ReaderLog, stop: asyncio.Event, paused: asyncio.Event) -> None:
    """Create a stream through the proxy, then hold it, reconnecting with Last-Event-ID.
    While `paused` is set the reader stops reading (its socket buffers fill)."""
    timeout = httpx.Timeout(5.0, read=15.0)
    async with httpx.AsyncClient(timeout=timeout) as http:
        while not stop.is_set():
            await _hold_stream(http, url, log, stop, paused)


async def _hold_stream(
    http: httpx.AsyncClient, url: str, log: ReaderLog, stop: asyncio.Event, paused: asyncio.Event
) -> None:
    """Create a stream and read it until it is lost (404: a client then creates a new one)."""
    while not log.stream_id and not stop.is_set():
        try:
            r = await http.post(f"{url}/v1/streams/{RESOURCE}", json=PARAMS)
            if r.status_code == 201:
                log.stream_id = r.text
                break
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.3)
    while not stop.is_set():
        headers = {"Accept": "text/event-stream"}
        if log.run:
            headers["Last-Event-ID"] = f"{log.run}/{log.version}"
        try:
            async with http.stream(
                "GET", f"{url}/v1/streams/{log.stream_id}", headers=headers
            ) as response:
                if response.status_code == 404:
                    # The id is gone (with FLUSHALL, the stream registry is): start over
                    # as a client does, on a new stream, a new session.
                    log.lost.append(log.stream_id)
                    log.stream_id, log.run, log.version, log.state = "", "", -1, {}
                    return
                if response.status_code != 200:
                    await asyncio.sleep(0.3)
                    log.reconnects += 1
                    continue
                await _consume(response, log, stop, paused)
        except (httpx.HTTPError, ValueError):
            pass
        log.reconnects += 1
        await asyncio.sleep(0.2)


async def _consume(
    response: httpx.Response, log: ReaderLog, stop: asyncio.Event, paused: asyncio.Event
) -> None:
    event, event_id, data = "message", None, ""
    async for line in response.aiter_lines():
        while paused.is_set() and not stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        if stop.is_set():
            return
        if not line:
            if data:
                log.apply(event, event_id, data)
            event, event_id, data = "message", None, ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
