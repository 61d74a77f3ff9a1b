"""The subcommands of `skiff`. Adding one: a module with a `COMMAND` object, listed here."""

from __future__ import annotations

import argparse
from typing import Protocol

from skiff.commands import dev, follower, inspect, leader, proxy, redis_cli, serve


class Command(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def help(self) -> str: ...

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Declare the subcommand's arguments."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit status. Raise BrokerError for a clean failure."""


COMMANDS: tuple[Command, ...] = (
    serve.COMMAND,
    leader.COMMAND,
    follower.COMMAND,
    inspect.COMMAND,
    proxy.COMMAND,
    dev.COMMAND,
    redis_cli.COMMAND,
)

__all__ = ["COMMANDS", "Command"]
