"""A Hacker News-like service: posts ranked live by upvotes, per-session views.

Inputs:   posts    post_id    -> [{"title", "url", "author"}]        (author: a user id)
          users    user_id    -> [{"name"}]
          upvotes  "post_id:user_id" -> [{"post": post_id, "user": user_id}]
          sessions session_id -> [{"user": user_id}]
Shared:   ranked   [-upvotes, post_id] -> [post with "upvotes" and "author_name"]
          upvoters post_id -> [user_id, ...]
          users, sessions (re-exported so resources can read them)
Resources: posts {limit, session_id}: the top `limit` posts, each flagged "upvoted" for the
           session's user; session {session_id}: who is logged in.

With identity tokens on (`make dev` turns them on, docs/security.md), the user comes from the
token, not from params: `posts` (public: anyone may read the ranking) flags the posts the
token's `sub` upvoted, and `session` answers 403 for a session that is not the caller's. With
auth off (`skiff serve`, Skip's clients) both trust `session_id` as before.

Run it:  skiff serve examples.hackernews:service   (or `make dev` for the whole cluster)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graph import (
    Context,
    Count,
    EagerCollection,
    ForbiddenError,
    Mapper,
    Resource,
    Service,
    Values,
)


class UpvotesByPost(Mapper):
    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        for upvote in values:
            yield upvote["post"], upvote["user"]


class RankedPosts(Mapper):
    """Keys posts by (-upvotes, id) so key order is the ranking; reads counts and authors."""

    def __init__(self, counts: EagerCollection, users: EagerCollection) -> None:
        self.counts = counts
        self.users = users

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        post = values.get_unique()
        upvotes = self.counts.get_unique(key, default=0)
        author = self.users.get_unique(post.get("author"), default={"name": "anonymous"})
        yield (
            [-upvotes, key],
            {
                **post,
                "id": key,
                "upvotes": upvotes,
                "author_name": author.get("name", "anonymous"),
            },
        )


class FlagUpvoted(Mapper):
    """Adds "upvoted": whether the session's user upvoted the post."""

    def __init__(
        self, sessions: EagerCollection, upvoters: EagerCollection, session_id: Any
    ) -> None:
        self.sessions = sessions
        self.upvoters = upvoters
        self.session_id = session_id

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        session = self.sessions.get_unique(self.session_id, default=None)
        user = session.get("user") if isinstance(session, dict) else None
        post = values.get_unique()
        voted = user is not None and user in self.upvoters.get_array(post["id"])
        yield key, {**post, "upvoted": voted}


class FlagUpvotedBy(Mapper):
    """Adds "upvoted": whether `user` (the token's subject) upvoted the post."""

    def __init__(self, upvoters: EagerCollection, user: str) -> None:
        self.upvoters = upvoters
        self.user = user

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        post = values.get_unique()
        yield key, {**post, "upvoted": self.user in self.upvoters.get_array(post["id"])}


class SessionUser(Mapper):
    def __init__(self, users: EagerCollection) -> None:
        self.users = users

    def map_entry(self, key: Any, values: Values) -> Iterator[tuple[Any, Any]]:
        user_id = values.get_unique().get("user")
        user = self.users.get_unique(user_id, default=None)
        if user is not None:
            yield key, {"user_id": user_id, **user}


def _session_id(params: Any) -> Any:
    session_id = params.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise ValueError("session_id must be a string")
    return session_id


class TopPosts(Resource):
    # The ranking is for everyone; a token only adds the caller's own "upvoted" flags.
    public = True

    def __init__(self, params: Any) -> None:
        if not isinstance(params, dict):
            raise ValueError('params must be an object like {"limit": 10}')
        limit = params.get("limit", 10)
        if type(limit) is not int or not 0 <= limit <= 1000:
            raise ValueError("limit must be an integer between 0 and 1000")
        self.limit = limit
        self.session_id = _session_id(params)

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        top = collections["ranked"].take(self.limit)
        user = context.claims.get("sub")
        if user is not None:
            return top.map(FlagUpvotedBy, collections["upvoters"], user)
        if self.session_id is None:
            return top
        return top.map(
            FlagUpvoted, collections["sessions"], collections["upvoters"], self.session_id
        )


class CurrentSession(Resource):
    def __init__(self, params: Any) -> None:
        # With a token, the session defaults to the caller's own.
        user = self.claims.get("sub")
        if isinstance(params, dict) and "session_id" not in params and user is not None:
            params = {"session_id": f"session-{user}"}
        if not isinstance(params, dict) or not isinstance(params.get("session_id"), str):
            raise ValueError('params must be {"session_id": "..."}')
        self.session_id = params["session_id"]

    def instantiate(
        self, collections: Mapping[str, EagerCollection], context: Context
    ) -> EagerCollection:
        sessions = collections["sessions"]
        user = context.claims.get("sub")
        if user is not None:
            # A read of the shared collection: tracked, so a session given to someone else
            # later rebuilds (and refuses) the instance.
            session = sessions.get_unique(self.session_id, default=None)
            if not isinstance(session, dict) or session.get("user") != user:
                raise ForbiddenError(f"session {self.session_id!r} is not yours")
        return sessions.slice(self.session_id, self.session_id).map(
            SessionUser, collections["users"]
        )


def create_graph(
    inputs: Mapping[str, EagerCollection], context: Context
) -> dict[str, EagerCollection]:
    upvoters = inputs["upvotes"].map(UpvotesByPost)
    counts = upvoters.reduce(Count)
    ranked = inputs["posts"].map(RankedPosts, counts, inputs["users"])
    return {
        "ranked": ranked,
        "upvoters": upvoters,
        "users": inputs["users"],
        "sessions": inputs["sessions"],
    }


SEED_USERS = [
    ("alice", {"name": "Alice"}),
    ("bob", {"name": "Bob"}),
    ("carol", {"name": "Carol"}),
    ("dave", {"name": "Dave"}),
]
SEED_POSTS = [
    ("p1", {"title": "Skip: reactive services", "url": "https://skiplabs.io", "author": "alice"}),
    ("p2", {"title": "Redis Streams explained", "url": "https://redis.io", "author": "bob"}),
    (
        "p3",
        {
            "title": "Server-Sent Events in practice",
            "url": "https://example.com/sse",
            "author": "carol",
        },
    ),
    (
        "p4",
        {
            "title": "Incremental computation 101",
            "url": "https://example.com/inc",
            "author": "dave",
        },
    ),
]
# An upvote's id is "<post>:<user>", so a user upvotes a post at most once and un-upvoting is
# deleting that key (what the web front end at the proxy's `/` does).
SEED_UPVOTES = [
    ("p1:bob", {"post": "p1", "user": "bob"}),
    ("p1:carol", {"post": "p1", "user": "carol"}),
    ("p2:alice", {"post": "p2", "user": "alice"}),
]

service = Service(
    name="hackernews",
    inputs={
        "posts": [(k, [v]) for k, v in SEED_POSTS],
        "users": [(k, [v]) for k, v in SEED_USERS],
        "upvotes": [(k, [v]) for k, v in SEED_UPVOTES],
        "sessions": [(f"session-{k}", [{"user": k}]) for k, _ in SEED_USERS],
    },
    resources={"posts": TopPosts, "session": CurrentSession},
    create_graph=create_graph,
)
