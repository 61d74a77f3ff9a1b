"""A command that cannot start says why in one line and exits 1: no traceback, no "ready"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def skiff(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other server listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "tests.support.services:service"],
        ["leader", "tests.support.cluster_services:service"],
        # A follower listens only once it has the leader's state: it checks the port first.
        ["follower", "tests.support.cluster_services:service"],
        ["proxy", "--service", "cluster"],
    ],
    ids=lambda c: c[0],
)
def test_a_port_in_use_is_one_line(command: list[str], busy_port: int, redis_url: str) -> None:
    argv = [*command, "--port", str(busy_port), "--log-level", "warning"]
    if command[0] != "serve":
        argv += ["--redis", redis_url]
    done = skiff(*argv)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"skiff {command[0]}: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "Address already in use" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_dev_on_a_port_in_use_stops_before_starting_anything(busy_port: int) -> None:
    done = skiff("dev", "tests.support.cluster_services:service", env={"PORT": str(busy_port)})
    assert done.returncode == 1
    assert done.stdout == ""  # nothing started, nothing "ready"
    line = done.stderr
    assert line.startswith(f"skiff dev: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "Address already in use; another skiff dev?" in line
    assert f"make dev PORT={busy_port + 2}" in line and line.count("\n") == 1


@pytest.fixture
def busy_next_port() -> Iterator[int]:
    """A port some other server listens on, whose predecessor was free a moment ago (the
    predecessor of any busy port may be another process's, and then that one is reported)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", free + 1))
            except OSError:
                continue
            sock.listen()
            yield free + 1
            return
    raise RuntimeError("no free port followed by a free one")


def test_dev_on_a_control_port_in_use_stops_before_starting_anything(busy_next_port: int) -> None:
    busy_port = busy_next_port
    # The proxy's second port (for Skip's clients) is --port + 1 by default.
    done = skiff("dev", "tests.support.cluster_services:service", env={"PORT": str(busy_port - 1)})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"skiff dev: cannot listen on 127.0.0.1:{busy_port}: ")
    assert "--control-port 0 opens no second port" in done.stderr


def test_dev_refuses_a_port_that_is_not_a_number() -> None:
    done = skiff("dev", env={"PORT": "eighty"})
    assert (done.returncode, done.stderr) == (
        1,
        "skiff dev: PORT must be a port number, got 'eighty'\n",
    )
