"""Skip's hackernews app on a skiff cluster: PostgreSQL with Skip's schema, the ported reactive
service (examples/skip_hackernews) on a leader, a follower and the proxy — real processes — and
the HTTP calls Skip's web service (its Flask app) makes, with what its front end reads:

- the Flask app's calls, to `SKIP_CONTROL_URL` = the proxy's control port + `/v1`: `PATCH
  /inputs/sessions` at login and logout, `POST /streams/posts|sessions` (it answers the browser
  a 307 to `/streams/<id>`), `POST /snapshot/posts|sessions`; and its SQL (upvote, un-upvote, a
  new post) straight to PostgreSQL;
- the browser's `EventSource` on the stream the redirect names, through the proxy's stream
  port, with `Accept: */*` (what a client following the redirect without asking sends).

Login, upvote, un-upvote, a new post and logout must each reach the streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from broker.client import Init, SseParser, decode_event
from broker.store.keyspace import Keyspace
from skiff.dev.embedded_redis import free_port
from tests.support.harness import Cluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "skip_hackernews" / "schema.sql"
SERVICE = "examples.skip_hackernews:service"


class LiveResource:
    """What a browser holds of one stream: the current entries, kept up to date."""

    def __init__(self) -> None:
        self.content: dict[Any, list[Any]] = {}
        self.events = 0
        self.changed = asyncio.Event()

    async def read(self, http: httpx.AsyncClient, url: str) -> None:
        async with http.stream("GET", url, headers={"Accept": "*/*"}, timeout=None) as response:
            assert response.status_code == 200, await response.aread()
            parser = SseParser()
            async for line in response.aiter_lines():
                message = parser.feed(line)
                event = None if message is None else decode_event(message)
                if event is None or (not event.entries and not isinstance(event, Init)):
                    continue  # a heartbeat
                if isinstance(event, Init):
                    self.content = {}
                for key, values in event.entries:
                    if values:
                        self.content[_hashable(key)] = values
                    else:
                        self.content.pop(_hashable(key), None)
                self.events += 1
                self.changed.set()

    async def until(
        self, check: Callable[[dict[Any, list[Any]]], bool], within: float = 20
    ) -> None:
        async with asyncio.timeout(within):
            while not check(self.content):
                self.changed.clear()
                await self.changed.wait()


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def post(content: dict[Any, list[Any]], post_id: int) -> dict[str, Any] | None:
    values = content.get(post_id)
    return values[0] if values else None


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[Any]:
    """Skip's schema, loaded into the test's own database (the Flask app's connection)."""
    import asyncpg

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(SCHEMA.read_text())
        yield conn
    finally:
        await conn.close()


def pg_environment(dsn: str) -> dict[str, str]:
    """Skip's PG_* variables for a DSN (what the reactive service reads)."""
    parts = urlsplit(dsn)
    return {
        "PG_HOST": parts.hostname or "127.0.0.1",
        "PG_PORT": str(parts.port or 5432),
        "PG_DATABASE": parts.path.lstrip("/"),
        "PG_USER": parts.username or "postgres",
        "PG_PASSWORD": parts.password or "",
    }


async def test_skips_hackernews_web_service_calls_on_a_skiff_cluster(
    redis_url: str, keyspace: Keyspace, postgres_dsn: str, pg: Any, tmp_path: Path
) -> None:
    env = {**pg_environment(postgres_dsn), "SKIFF_SERVICE_NAME": keyspace.service}
    async with Cluster(redis_url, tmp_path, service=SERVICE, env=env) as cluster:
        await cluster.leader("leader")
        await cluster.follower("follower")
        control_port = free_port()
        proxy = await cluster.proxy(
            "proxy", "--service", keyspace.service, "--control-port", str(control_port)
        )
        skip_control_url = f"http://127.0.0.1:{control_port}/v1"  # the Flask app's setting
        session_id = secrets.token_urlsafe(32)  # the Flask app's session cookie
        posts_params = {"limit": 10, "session_id": session_id}
        async with (
            httpx.AsyncClient(timeout=10) as flask,  # the web service's `requests`
            httpx.AsyncClient(base_url=proxy.url, timeout=10) as browser,
            contextlib.AsyncExitStack() as readers,
        ):
            # GET /posts without text/event-stream: a snapshot, once the tables are loaded.
            async def first_page() -> list[Any]:
                reply = await flask.post(f"{skip_control_url}/snapshot/posts", json=posts_params)
                assert reply.status_code in (200, 503), reply.text
                return reply.json() if reply.status_code == 200 else []

            page: list[Any] = []
            async with asyncio.timeout(30):
                while len(page) < 4:
                    page = await first_page()
                    await asyncio.sleep(0.1)
            by_id = {key: values[0] for key, values in page}
            assert by_id[2] == {
                "title": "Leader/follower replication on Redis Streams",
                "url": "https://example.org/streams",
                "body": "",
                "date": "2026-11-03 10:30:00+00",
                "author": {"id": 2, "name": "Grace", "email": "grace@example.org"},
                "upvotes": 3,
                "upvoted": False,
            }
            assert by_id[4]["author"] == {"name": "unknown author", "email": "unknown email"}
            assert {k: v["upvotes"] for k, v in by_id.items()} == {1: 2, 2: 3, 3: 1, 4: 0}

            # GET /posts and GET /session with text/event-stream: create, redirect, read.
            streams = {}
            for resource, params in (
                ("posts", posts_params),
                ("sessions", {"session_id": session_id}),
            ):
                created = await flask.post(f"{skip_control_url}/streams/{resource}", json=params)
                assert created.status_code == 201, created.text
                live = streams[resource] = LiveResource()
                task = asyncio.create_task(live.read(browser, f"/v1/streams/{created.text}"))
                readers.callback(task.cancel)
            posts, sessions = streams["posts"], streams["sessions"]
            await posts.until(lambda c: len(c) == 4)
            await sessions.until(lambda c: sessions.events >= 1)
            assert sessions.content == {}

            # POST /login: the user from PostgreSQL, then the session written to skiff.
            user = await pg.fetchrow(
                "SELECT id, name, email FROM users WHERE LOWER(name) = LOWER($1)", "ada"
            )
            ada = {"user_id": user["id"], "name": user["name"], "email": user["email"]}
            login = await flask.patch(
                f"{skip_control_url}/inputs/sessions", json=[[session_id, [ada]]]
            )
            assert login.status_code == 200, login.text
            await sessions.until(lambda c: c == {0: [ada]})
            # Ada upvoted posts 2 and 3 (schema.sql): her page says so.
            await posts.until(lambda c: [k for k in sorted(c) if post(c, k)["upvoted"]] == [2, 3])

            # PUT /posts/1/upvotes
            await pg.execute(
                "INSERT INTO upvotes(post_id, user_id) VALUES($1, $2)", 1, ada["user_id"]
            )
            await posts.until(lambda c: post(c, 1)["upvotes"] == 3 and post(c, 1)["upvoted"])

            # DELETE /posts/1/upvotes
            await pg.execute(
                "DELETE FROM upvotes WHERE post_id = $1 AND user_id = $2", 1, ada["user_id"]
            )
            await posts.until(lambda c: post(c, 1)["upvotes"] == 2 and not post(c, 1)["upvoted"])

            # POST /posts
            new_id = await pg.fetchval(
                "INSERT INTO posts(title, url, body, author_id) VALUES($1, $2, $3, $4) "
                "RETURNING id",
                "Skip's hackernews, unchanged", "https://example.org/port", "", ada["user_id"],
            )  # fmt: skip
            await posts.until(lambda c: post(c, new_id) is not None)
            fresh = post(posts.content, new_id)
            assert fresh is not None
            assert (fresh["title"], fresh["upvotes"], fresh["upvoted"]) == (
                "Skip's hackernews, unchanged", 0, False,
            )  # fmt: skip
            assert fresh["author"] == {"id": 1, "name": "Ada", "email": "ada@example.org"}
            assert isinstance(fresh["date"], str) and fresh["date"].endswith("+00")

            # POST /logout
            logout = await flask.patch(
                f"{skip_control_url}/inputs/sessions", json=[[session_id, []]]
            )
            assert logout.status_code == 200, logout.text
            await sessions.until(lambda c: c == {})
            await posts.until(lambda c: not any(post(c, k)["upvoted"] for k in c))

            # GET /session without text/event-stream, after logout: nothing (the snapshot).
            reply = await flask.post(
                f"{skip_control_url}/snapshot/sessions", json={"session_id": session_id}
            )
            assert reply.status_code == 200 and reply.json() == []
            # And the page a new visitor gets agrees with the live one.
            reply = await flask.post(
                f"{skip_control_url}/snapshot/posts", json={"limit": 10, "session_id": "nobody"}
            )
            assert {key: values[0] for key, values in reply.json()} == {
                _hashable(k): v[0] for k, v in posts.content.items()
            }
