"""Skip's hackernews reactive service (examples/hackernews/reactive_service in SkipLabs/skip),
ported to skiff: the same inputs, resources, keys and value shapes, over the same PostgreSQL
tables through skiff's PostgreSQL adapter, so that Skip's web service (its Flask app) and front
end run against a skiff cluster unchanged.

PostgreSQL tables (schema.sql): users {id, name, email}, posts {id, author_id, title, url,
body, date}, upvotes {id, user_id, post_id}; each followed as an external collection keyed by
its serial `id`, every value a whole row.

Input:     sessions   session id (a string) -> [{"user_id", "name", "email"}]   (the web
                      service writes it at login, deletes it at logout)
Shared:    postsWithUpvotes  [-upvote count, post id] -> [the post row with "upvotes" (the
                      upvoters' user ids) and "author" (the author's users row)]
           sessions   the input
Resources: posts      {"limit": n (25), "session_id": s}: the first n posts by upvotes, keyed
                      by post id: {"title", "url", "body", "date", "author", "upvotes" (a
                      count), "upvoted" (by the session's user)}
           sessions   {"session_id": s}: key 0 -> the session, when logged in

The connection comes from PG_HOST, PG_PORT, PG_DATABASE, PG_USER and PG_PASSWORD (Skip's
variables and defaults).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from broker.external import PostgresExternalService
from graph import Context, EagerCollection, Mapper, Resource, Service, Values

#: The author of a post whose author is not in `users`.
UNKNOWN_USER = {"name": "unknown author", "email": "unknown email"}
#: Each table is keyed by its serial `id` column.
SERIAL_ID_KEY = {"key": {"col": "id", "type": "SERIAL"}}


class UpvotesMapper(Mapper):
    """upvote id -> [row] becomes post id -> the upvoter's user id."""

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        upvote = values.get_unique()
        yield upvote["post_id"], upvote["user_id"]


class PostsMapper(Mapper):
    """post id -> [row] becomes [-upvotes, post id] -> the row with its upvoters and author:
    key order is the ranking (most upvoted first, then by id)."""

    def __init__(self, users: EagerCollection, upvotes: EagerCollection) -> None:
        self.users = users
        self.upvotes = upvotes

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        post = values.get_unique()
        upvotes = self.upvotes.get_array(key)
        author = self.users.get_unique(post["author_id"], default=None)
        yield [-len(upvotes), key], {**post, "upvotes": upvotes, "author": author or UNKNOWN_USER}


class CleanupMapper(Mapper):
    """What a client sees of a post: the upvote count, and whether the session's user
    upvoted it."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        post = values.get_unique()
        upvoted = self.session is not None and self.session["user_id"] in post["upvotes"]
        yield (
            key[1],
            {
                "title": post["title"],
                "url": post["url"],
                "body": post["body"],
                "date": post["date"],
                "author": post["author"],
                "upvotes": len(post["upvotes"]),
                "upvoted": upvoted,
            },
        )


class PostsResource(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if not isinstance(params, dict):
            raise ValueError('params must be {"limit"?: n, "session_id": s}')
        self.limit = params.get("limit", 25)
        if "session_id" not in params:
            raise ValueError("Missing required session_id.")
        self.session_id = params["session_id"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        # A read in instantiate: when this session logs in or out, the instance is rebuilt.
        session = collections["sessions"].get_unique(self.session_id, default=None)
        return collections["postsWithUpvotes"].take(self.limit).map(CleanupMapper, session)


class FilterSessionMapper(Mapper):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        if key != self.session_id:
            return
        sessions = values.to_list()
        if sessions:
            yield 0, sessions[0]


class SessionsResource(Resource):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        if not isinstance(params, dict) or "session_id" not in params:
            raise ValueError("Missing required session_id.")
        self.session_id = params["session_id"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        return collections["sessions"].map(FilterSessionMapper, self.session_id)


def create_graph(inputs: Mapping[str, EagerCollection], context: Context) -> dict[str, Any]:
    posts = context.use_external_resource("postgres", "posts", SERIAL_ID_KEY)
    users = context.use_external_resource("postgres", "users", SERIAL_ID_KEY)
    upvotes = context.use_external_resource("postgres", "upvotes", SERIAL_ID_KEY)
    return {
        "postsWithUpvotes": posts.map(PostsMapper, users, upvotes.map(UpvotesMapper)),
        "sessions": inputs["sessions"],
    }


def postgres_dsn(env: Mapping[str, str] = os.environ) -> str:
    """The connection of Skip's example: PG_* variables, with its defaults."""
    host = env.get("PG_HOST") or "db"
    port = env.get("PG_PORT") or "5432"
    database = quote(env.get("PG_DATABASE") or "postgres", safe="")
    user = quote(env.get("PG_USER") or "postgres", safe="")
    password = quote(env.get("PG_PASSWORD") or "change_me", safe="")
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"


def make_service(dsn: str | None = None, name: str = "skip-hackernews") -> Service:
    return Service(
        name=name,
        inputs={"sessions": []},
        resources={"posts": PostsResource, "sessions": SessionsResource},
        create_graph=create_graph,
        external_services={"postgres": PostgresExternalService(dsn or postgres_dsn())},
    )
