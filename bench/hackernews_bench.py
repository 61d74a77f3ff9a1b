"""The hackernews example (examples/hackernews.py) over HTTP: write→SSE latency of an upvote on
a session's live front page, and upvote ingest throughput.

    .venv/bin/python -m bench.hackernews_bench --posts 1000

The service starts with its seed data; the benchmark adds `--posts` posts and 100 users. Latency:
each write is a new upvote of post p1, so p1's count on the live `posts {limit: 10, session_id}`
page changes every time. Throughput: 100-upvote PATCH batches on random posts by random users."""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Callable
from typing import Any

import orjson

from bench.cluster import serve
from bench.endpoints import Endpoint
from bench.http_bench import Entries, ingest, pct, write_to_sse
from bench.report import print_table, write_json

USERS = 100
PAGE = {"limit": 10, "session_id": "session-alice"}


def post(i: int) -> dict[str, str]:
    return {"title": f"Post {i}", "url": f"https://example.com/{i}", "author": f"user{i % USERS}"}


def user(rng: random.Random) -> str:
    return f"user{rng.randrange(USERS)}"


async def load(endpoint: Endpoint, posts: int) -> None:
    conn = await endpoint.control()
    try:
        users = [[f"user{i}", [{"name": f"User {i}"}]] for i in range(USERS)]
        resp = await conn.request("PATCH", "/v1/inputs/users", orjson.dumps(users))
        assert resp.status == 200, resp
        for start in range(0, posts, 100):
            batch = [[f"post{i}", [post(i)]] for i in range(start, min(posts, start + 100))]
            resp = await conn.request("PATCH", "/v1/inputs/posts", orjson.dumps(batch))
            assert resp.status == 200, resp
    finally:
        await conn.close()


def upvote_p1(n: int) -> Entries:
    return [[f"lat-{n}", [{"post": "p1", "user": f"user{n % USERS}"}]]]


def upvote_batches(posts: int, batch: int) -> Callable[[random.Random], Entries]:
    counter = 0

    def make(rng: random.Random) -> Entries:
        nonlocal counter
        counter += 1
        return [
            [f"up-{counter}-{j}", [{"post": f"post{rng.randrange(posts)}", "user": user(rng)}]]
            for j in range(batch)
        ]

    return make


async def hackernews_figures(
    endpoint: Endpoint, posts: int, writes: int, seconds: float, batch: int = 100
) -> dict[str, Any]:
    await load(endpoint, posts)
    lat = await write_to_sse(endpoint, "posts", PAGE, "upvotes", upvote_p1, writes)
    thr = await ingest(
        endpoint, "posts", PAGE, "upvotes", upvote_batches(posts, batch), seconds, conns=2
    )
    return {
        "posts": posts,
        "latency_ms": [x * 1e3 for x in lat],
        "latency_p50_ms": sorted(lat)[len(lat) // 2] * 1e3,
        "latency_p99_ms": pct(lat, 0.99) * 1e3,
        "throughput_keys_per_s": thr["keys_per_s"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    with serve("examples.hackernews:service") as node:
        result = asyncio.run(hackernews_figures(node, args.posts, args.writes, args.seconds))
    print_table(
        "hackernews example, one node",
        [
            ("write→SSE p50 (ms)", f"{result['latency_p50_ms']:.2f}"),
            ("write→SSE p99 (ms)", f"{result['latency_p99_ms']:.2f}"),
            ("upvotes ingested (keys/s)", f"{result['throughput_keys_per_s']:,.0f}"),
        ],
    )
    write_json("hackernews", result)
    return result


if __name__ == "__main__":
    main()
