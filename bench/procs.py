"""Starting skiff processes for benchmarks, and waiting for them to be ready."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def skiff(
    *args: str, env: dict[str, str] | None = None, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `skiff ARGS...` (from this checkout's venv) and stop it on exit."""
    exe = Path(sys.executable).parent / "skiff"
    proc = subprocess.Popen(
        [str(exe), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if ready_url:
            wait_ready(ready_url)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
