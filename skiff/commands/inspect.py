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
from broker.store.connection import connect, redacted
from broker.store.discovery import find_services
from broker.store.keyspace import Keyspace
from broker.store.scripts import RedisCallError
from skiff.commands.options import require_redis


@dataclass(frozen=True)
class InspectCommand:
    name: str = "inspect"
    help: str = "print the replication state of services in Redis (leader, epoch, lag, ...)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--redis",
            default=os.environ.get("SKIFF_REDIS_URL"),
            help="Redis URL: redis://, rediss:// (TLS), credentials allowed "
            "(default: $SKIFF_REDIS_URL)",
        )
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
    except (redis_errors.RedisError, RedisCallError) as err:
        raise BrokerError(f"cannot read {redacted(url)}: {err}") from err
    finally:
        await redis.aclose()
    if as_json:
        payload = views[0].to_json() if service else [v.to_json() for v in views]
        sys.stdout.write(dumps(payload).decode() + "\n")
    else:
        sys.stdout.write("\n\n".join(render_text(v) for v in views) + "\n")
    return 0


COMMAND = InspectCommand()
