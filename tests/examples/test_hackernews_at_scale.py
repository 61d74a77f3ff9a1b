"""The hackernews shape at scale: one `posts` instance per session, and an upvote reaches the
instances that show its post, nothing else (counted: the pages' mapper reruns, and the
instances a tick reports changed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from examples import hackernews
from graph import Engine, ResourceInstance, Values

SESSIONS = 300
POSTS = 40
LIMIT = 3


@pytest.fixture
def reruns(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The (session, post) of every FlagUpvoted run: a page recomputing one of its posts."""
    seen: list[Any] = []
    original = hackernews.FlagUpvoted.map_entry

    def counted(self: hackernews.FlagUpvoted, key: Any, values: Values) -> Iterator[Any]:
        seen.append((self.session_id, key))
        return original(self, key, values)

    monkeypatch.setattr(hackernews.FlagUpvoted, "map_entry", counted)
    return seen


def engine_with_pages() -> tuple[Engine, list[ResourceInstance]]:
    users = [(f"u{i}", [{"name": f"User {i}"}]) for i in range(SESSIONS)]
    posts = [(f"p{i}", [{"title": f"Post {i}", "url": "https://x", "author": "u0"}])
             for i in range(POSTS)]  # fmt: skip
    # p0..p2 lead with 3, 2 and 1 upvotes; the others have none.
    upvotes = [(f"p{p}:u{u}", [{"post": f"p{p}", "user": f"u{u}"}])
               for p, count in ((0, 3), (1, 2), (2, 1)) for u in range(count)]  # fmt: skip
    sessions = [(f"s{i}", [{"user": f"u{i}"}]) for i in range(SESSIONS)]
    service = dataclasses.replace(
        hackernews.service,
        inputs={"posts": posts, "users": users, "upvotes": upvotes, "sessions": sessions},
    )
    engine = Engine.for_service(service)
    pages = [engine.instantiate("posts", {"limit": LIMIT, "session_id": f"s{i}"})
             for i in range(SESSIONS)]  # fmt: skip
    return engine, pages


def upvote(engine: Engine, post: str, user: str) -> set[int]:
    result = engine.apply({"upvotes": [(f"{post}:{user}", [{"post": post, "user": user}])]})
    return set(result.instances)


def test_an_upvote_off_every_page_reaches_no_page(reruns: list[Any]) -> None:
    engine, _ = engine_with_pages()
    reruns.clear()
    assert upvote(engine, "p30", "u7") == set()  # p30 goes from 0 to 1: still off the top 3
    assert reruns == []


def test_an_upvote_on_every_page_reaches_each_page_once(reruns: list[Any]) -> None:
    engine, pages = engine_with_pages()
    reruns.clear()
    changed = upvote(engine, "p0", "u9")  # the top post: every page shows its new count
    assert changed == {page.id for page in pages}
    assert len(reruns) == SESSIONS  # one rerun per page, of that post only
    assert all(post == [-4, "p0"] for _, post in reruns)
    mine = engine.instances()[9].entries()
    assert mine[0][1][0]["upvoted"] is True and mine[0][1][0]["upvotes"] == 4


def test_an_upvote_that_enters_the_top_reaches_every_page() -> None:
    engine, pages = engine_with_pages()
    two = [(f"p30:u{i}", [{"post": "p30", "user": f"u{i}"}]) for i in range(2)]
    engine.apply({"upvotes": two})
    # p30 now ties p1 (2 upvotes) and sorts after it; a third upvote lifts it to the second row.
    assert upvote(engine, "p30", "u2") == {page.id for page in pages}
    assert [key for key, _ in pages[0].entries()] == [[-3, "p0"], [-3, "p30"], [-2, "p1"]]
