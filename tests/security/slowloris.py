"""Connections that never finish a request, against a real proxy and a real follower.

    python -m tests.security.slowloris --connections 10000     # `make slowloris`

Each slow client sends a request line, then one header line every `--interval` seconds, and
never ends its head. `flood` opens N of them (from several loopback addresses, under the
proxy's per-address cap) and records when each was closed; while they are open, a new client
creates a stream, reads its init and sees a write arrive, and a stream opened before the flood
keeps receiving updates. Printed as JSON; exit 1 when a check fails. tests/security/
test_slowloris.py runs a smaller flood under `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from broker.client import Init, SkiffClient, Update
from broker.runtime.fd_limit import raise_open_files_limit
from skiff.dev.embedded_redis import EmbeddedRedis
from tests.support.harness import Cluster

# Heads: one the node answers on its own connection, one it hands to uvicorn at once.
HEADS = (b"GET /v1/streams/abc.def HTTP/1.1\r\nHost: x\r\n", b"POST /v1/streams/top HTTP/1.1\r\n")
CAP = 1024  # the proxy's default --max-connections-per-address
PER_SOURCE = 500  # connections per loopback address: under the proxy's cap
BATCH = 400  # connections opened at once: within the listen backlog


class SlowClient(asyncio.Protocol):
    __slots__ = ("closed_at", "opened_at", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.opened_at = 0.0
        self.closed_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.opened_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        pass  # a 408, or nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_at = time.monotonic()


@dataclass
class Flood:
    target: str
    connections: int
    refused_to_open: int = 0
    opened_in_s: float = 0.0
    peak_open: int = 0
    still_open: int = 0
    longest_open_s: float = 0.0
    clients: list[SlowClient] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "clients"}


async def flood(
    target: str, host: str, port: int, connections: int, source: str | None = None
) -> Flood:
    """Open `connections` slow clients against host:port (from `source`, else spread over
    127.0.0.2 and up, PER_SOURCE each), each having sent a request line."""
    loop = asyncio.get_running_loop()
    result = Flood(target, connections)
    started = time.monotonic()

    async def open_one(i: int) -> None:
        here = source or f"127.0.0.{2 + i // PER_SOURCE}"
        try:
            _, client = await loop.create_connection(SlowClient, host, port, local_addr=(here, 0))
        except OSError:
            result.refused_to_open += 1
            return
        assert client.transport is not None
        client.transport.write(b"%s\r\n" % HEADS[i % 2].split(b"\r\n", 1)[0])
        result.clients.append(client)

    for first in range(0, connections, BATCH):
        await asyncio.gather(*(open_one(i) for i in range(first, min(first + BATCH, connections))))
        result.peak_open = max(result.peak_open, _open(result.clients))
    result.opened_in_s = time.monotonic() - started
    return result


def _open(clients: list[SlowClient]) -> int:
    return sum(1 for c in clients if c.closed_at is None)


async def trickle(result: Flood, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for client in result.clients:
            if client.closed_at is None and client.transport is not None:
                client.transport.write(b"X-Slow: 1\r\n")


async def drained(result: Flood, within: float) -> None:
    deadline = time.monotonic() + within
    while _open(result.clients) and time.monotonic() < deadline:  # noqa: ASYNC110 (polled)
        await asyncio.sleep(0.1)
    result.still_open = _open(result.clients)
    for client in result.clients:
        if client.closed_at is not None:
            result.longest_open_s = max(result.longest_open_s, client.closed_at - client.opened_at)
        elif client.transport is not None:
            client.transport.abort()


async def one_address(url: str, connections: int) -> dict[str, int]:
    """`connections` from one address at once: those beyond the cap are closed at once."""
    result = await flood("one address", "127.0.0.1", int(url.rsplit(":", 1)[1]), connections,
                         source="127.0.0.254")  # fmt: skip
    await asyncio.sleep(1.0)  # well within the header timeout: only refusals have closed
    refused = connections - _open(result.clients)
    for client in result.clients:
        if client.transport is not None:
            client.transport.abort()
    return {"connections": connections, "refused": refused}


async def served_meanwhile(url: str, post: int) -> float:
    """Seconds for a new client to create a stream, read its init and see a write in it."""
    started = time.monotonic()
    async with SkiffClient(url, timeout=10) as client:
        stream_id = await client.create_stream("top", {"limit": 50 + post})
        events = client.events(stream_id)
        first = await asyncio.wait_for(anext(events), 10)
        assert isinstance(first, Init), first
        await client.patch("votes", [[f"meanwhile-{post}", [{"post": post}]]])
        while True:
            event = await asyncio.wait_for(anext(events), 10)
            if isinstance(event, Update) and event.entries:
                break
        await events.aclose()
    return time.monotonic() - started


async def run(
    redis_url: str, tmp: Path, *, connections: int, header_timeout: float, interval: float
) -> dict[str, Any]:
    raise_open_files_limit()
    timeout = ["--header-timeout", str(header_timeout)]
    report: dict[str, Any] = {"connections": connections, "header_timeout_s": header_timeout}
    async with Cluster(redis_url, tmp) as cluster:
        await cluster.leader("L1")
        follower = await cluster.follower("F1", *timeout)
        proxy = await cluster.proxy("proxy", *timeout)
        async with SkiffClient(proxy.url, timeout=10) as established:
            # A stream opened before the flood: it must outlive every header timeout.
            stream_id = await established.create_stream("top", {"limit": 5})
            events = established.events(stream_id)
            assert isinstance(await asyncio.wait_for(anext(events), 10), Init)
            for target, url in (("proxy", proxy.url), ("follower", follower.url)):
                port = int(url.rsplit(":", 1)[1])
                result = await flood(target, "127.0.0.1", port, connections)
                dripping = asyncio.create_task(trickle(result, interval))
                served = await served_meanwhile(url, post=len(report))
                await drained(result, header_timeout + 10.0)
                dripping.cancel()
                report[target] = {**result.summary(), "new_stream_served_in_s": round(served, 3)}
            report["one_address"] = await one_address(proxy.url, CAP + 100)
            await established.patch("votes", [["after-the-floods", [{"post": 1}]]])
            update = await asyncio.wait_for(anext(events), 10)
            report["established_stream_updated"] = isinstance(update, Update)
            await events.aclose()
    return report


def check(report: dict[str, Any], slack_s: float) -> list[str]:
    """The failed checks of a report (empty when all hold)."""
    failures = []
    bound = report["header_timeout_s"] + slack_s
    for target in ("proxy", "follower"):
        r = report[target]
        if r["refused_to_open"]:
            failures.append(f"{target}: {r['refused_to_open']} connections could not open")
        if r["still_open"]:
            failures.append(f"{target}: {r['still_open']} slow connections still open")
        if r["longest_open_s"] > bound:
            failures.append(f"{target}: one stayed open {r['longest_open_s']:.1f} s > {bound} s")
    one = report["one_address"]
    if one["refused"] != one["connections"] - CAP:
        failures.append(f"one address: {one['refused']} refused of {one['connections']}")
    if not report["established_stream_updated"]:
        failures.append("the established stream missed an update")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--header-timeout", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between headers")
    parser.add_argument("--slack", type=float, default=3.0, help="seconds past the timeout")
    args = parser.parse_args(argv)

    async def go(tmp: Path) -> dict[str, Any]:
        async with EmbeddedRedis() as redis:
            return await run(
                redis.url,
                tmp,
                connections=args.connections,
                header_timeout=args.header_timeout,
                interval=args.interval,
            )

    with tempfile.TemporaryDirectory(prefix="skiff-slowloris-") as tmp:
        report = asyncio.run(go(Path(tmp)))
    failures = check(report, args.slack)
    report["failures"] = failures
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
