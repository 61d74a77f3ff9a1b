"""Starting skiff processes for benchmarks, and waiting for them to be ready."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    """Run `skiff ARGS...` (from this checkout's venv) and stop it on exit. Its output is
    dropped, or appended to `$SKIFF_BENCH_LOG_DIR/<command>.log` when that is set."""
    exe = Path(sys.executable).parent / "skiff"
    log_dir = os.environ.get("SKIFF_BENCH_LOG_DIR")
    out: Any = subprocess.DEVNULL
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        out = open(Path(log_dir) / f"{args[0]}.log", "ab")
    proc = subprocess.Popen(
        [str(exe), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=subprocess.STDOUT if log_dir else subprocess.DEVNULL,
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
        if log_dir:
            out.close()
