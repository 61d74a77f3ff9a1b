"""`skiff inspect --redis URL [--service NAME] [--json]`: a service's replication state."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass

from redis import exceptions as redis_errors

from broker.cluster.inspect import read_cluster, render_text
from broker.errors import BrokerError
from broker.json_bytes import dumps
from broker.store.connection import close_client, connect, redacted
from broker.store.discovery import find_services
from broker.store.keyspace import Keyspace
from broker.store.primary import primary_address
from broker.store.redis_url import parse_redis_url
from broker.store.scripts import RedisCallError
from skiff.commands.options import REDIS_HELP, require_redis


@dataclass(frozen=True)
class InspectCommand:
    name: str = "inspect"
    help: str = "print the replication state of services in Redis (leader, epoch, lag, ...)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--redis", default=os.environ.get("SKIFF_REDIS_URL"), help=REDIS_HELP)
        parser.add_argument(
            "--service", help="the service to inspect (default: every service found)"
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")

    def run(self, args: argparse.Namespace) -> int:
        return asyncio.run(_inspect(require_redis(args), args.service, args.json))


async def _inspect(url: str, service: str | None, as_json: bool) -> int:
    redis = connect(url)
    try:
        found = await find_services(redis)
        if service is not None and service not in found:
            # A service with only nodes registered (no leader has initialised it yet) counts.
            found = sorted({*found, *await find_services(redis, "nodes")})
        if service is not None and service not in found:
            there = f"services there: {', '.join(found)}" if found else "no skiff service there"
            raise BrokerError(f"no service {service!r} in {redacted(url)} ({there})")
        if not found:
            raise BrokerError(f"no skiff service in {redacted(url)}")
        names = [service] if service else found
        views = [await read_cluster(redis, Keyspace(name)) for name in names]
        primaries = [await primary_address(redis, Keyspace(name).meta) for name in names]
    except (redis_errors.RedisError, RedisCallError) as err:
        raise BrokerError(f"cannot read {redacted(url)}: {err}") from err
    finally:
        await close_client(redis)
    where = parse_redis_url(url).describe()
    if as_json:
        payload = [
            {**v.to_json(), "redis": where, "redis_primary": p}
            for v, p in zip(views, primaries, strict=True)
        ]
        sys.stdout.write(dumps(payload[0] if service else payload).decode() + "\n")
    else:
        texts = [
            f"{render_text(v)}\nredis     {where}, primary {p}"
            for v, p in zip(views, primaries, strict=True)
        ]
        sys.stdout.write("\n\n".join(texts) + "\n")
    return 0


COMMAND = InspectCommand()
