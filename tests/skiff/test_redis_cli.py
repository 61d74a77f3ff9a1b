"""`skiff redis-cli`: the shipped valkey-cli (or one from PATH) against a cluster's Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skiff.commands.redis_cli import redis_cli_argv
from skiff.dev.embedded_redis import find_cli_binary

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], ["cli", "-u", "redis://h:1/0"]),
        (["PING"], ["cli", "-u", "redis://h:1/0", "PING"]),
        (["--", "XRANGE", "k", "-", "+"], ["cli", "-u", "redis://h:1/0", "XRANGE", "k", "-", "+"]),
    ],
)
def test_argv(arguments: list[str], expected: list[str]) -> None:
    assert redis_cli_argv("cli", "redis://h:1/0", arguments) == expected


def test_a_client_binary_is_found() -> None:
    binary = find_cli_binary()
    assert os.access(binary, os.X_OK)
    assert Path(binary).name in ("redis-cli", "valkey-cli")


@pytest.mark.parametrize(
    ("arguments", "out"),
    [
        (["ECHO", "- +"], "- +\n"),
        # After `--`, redis-cli's own options (and a scan of an empty pattern's matches).
        (["--", "--scan", "--pattern", "skiff-test-nothing:*"], ""),
    ],
)
def test_runs_against_the_url(redis_url: str, arguments: list[str], out: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skiff", "redis-cli", "--redis", redis_url, *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, out), done.stderr


def test_without_a_url_it_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SKIFF_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "skiff", "redis-cli", "PING"],
        cwd=ROOT, capture_output=True, text=True, timeout=20, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == "skiff: --redis URL (or SKIFF_REDIS_URL) is required\n"
