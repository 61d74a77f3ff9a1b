"""`skiff`: the command line. Each subcommand is a module of skiff.commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from broker.errors import BrokerError
from graph import GraphError
from skiff.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skiff", description="A reactive broker speaking Skip's HTTP/SSE protocol."
    )
    parser.add_argument("--version", action="version", version=f"skiff {version()}")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(run=command.run)
    return parser


def version() -> str:
    try:
        return metadata.version("skiff")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except (BrokerError, GraphError) as err:
        print(f"skiff {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The server already shut down in order; Ctrl+C is a normal way to stop it.
        return 0
    return code
