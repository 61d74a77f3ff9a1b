"""A real `skiff dev` cluster for the browser tests, with followers the tests may kill.

`skiff dev` stops the whole cluster when any of its processes exits (a dev loop should not limp
on), so it runs with `--followers 0` (Valkey, the leader and the proxy) and the followers are
started beside it, as `skiff follower` processes on the same Redis: the proxy finds them by
their heartbeats as it would find `skiff dev`'s own. Everything logs to `test-artifacts/web/`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from skiff.dev.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
SERVICE = "examples.hackernews:service"
#: Identity tokens on, as `make dev` has them: the nodes and the proxy verify with this key and
#: the app's demo login signs with it (made per run, like skiff dev's own).
DEMO_KEY = "web-test-demo-key-" + os.urandom(16).hex()
ENV = {**os.environ, "SKIFF_JWT_SECRET": DEMO_KEY, "SKIFF_DEMO_SIGNING_KEY": DEMO_KEY}


class WebCluster:
    def __init__(self, followers: tuple[str, ...] = ("follower-a", "follower-b")) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = ""
        self.follower_names = followers
        self._dev: subprocess.Popen[bytes] | None = None
        self._dev_log = ARTIFACTS / "skiff-dev.log"
        self.followers: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 60) -> None:
        log = self._open_log(self._dev_log)
        self._dev = subprocess.Popen(
            [sys.executable, "-m", "skiff", "dev", SERVICE, "--followers", "0",
             "--port", str(self.port), "--log-level", "info", "--access-log"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=ENV,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self.redis_url:
            found = re.search(r"embedded Valkey on (redis://\S+),", self._dev_log.read_text())
            if found:
                self.redis_url = found.group(1)
            elif self._dev.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"skiff dev did not start:\n{self.tail()}")
            else:
                time.sleep(0.1)
        for name in self.follower_names:
            self.start_follower(name)
        self.wait_serving(1 + len(self.follower_names), deadline - time.monotonic())

    def stop(self) -> None:
        for name in list(self.followers):
            self.stop_follower(name)
        if self._dev is not None:
            _stop(self._dev, 30)  # SIGINT: skiff dev stops the proxy, leader, Valkey in order
            self._dev = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> WebCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- followers -------------------------------------------------------------------------
    def start_follower(self, name: str) -> None:
        log = self._open_log(ARTIFACTS / f"{name}.log", append=name in self.followers)
        self.followers[name] = subprocess.Popen(
            [sys.executable, "-m", "skiff", "follower", SERVICE, "--node-id", name,
             "--port", str(free_port()), "--host", "127.0.0.1", "--redis", self.redis_url,
             "--log-level", "info", "--access-log"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=ENV,
        )  # fmt: skip

    def kill_follower(self, name: str) -> None:
        """SIGKILL: the follower vanishes without draining or deregistering."""
        process = self.followers[name]
        process.kill()
        process.wait(10)

    def stop_follower(self, name: str) -> None:
        process = self.followers.pop(name)
        _stop(process, 15)

    # -- reading ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with httpx.Client(timeout=2, trust_env=False) as http:
            body: dict[str, Any] = http.get(self.url + "/healthz").json()
            return body

    def wait_serving(self, count: int, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                health = self.health()
                if health.get("leader") and health.get("serving", 0) >= count:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} serving nodes:\n{self.tail()}")
            time.sleep(0.2)

    def snapshot(self, resource: str, params: Any) -> list[Any]:
        with httpx.Client(timeout=5, trust_env=False) as http:
            reply = http.post(f"{self.url}/v1/snapshot/{resource}", json=params)
            reply.raise_for_status()
            entries: list[Any] = reply.json()
            return entries

    def logs(self) -> str:
        """Every line every process of the cluster wrote so far."""
        texts = []
        for path in [self._dev_log, *(ARTIFACTS / f"{n}.log" for n in self.follower_names)]:
            with contextlib.suppress(FileNotFoundError):
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def tail(self, lines: int = 60) -> str:
        texts = []
        for path in [self._dev_log, *(ARTIFACTS / f"{n}.log" for n in self.follower_names)]:
            with contextlib.suppress(FileNotFoundError):
                texts.append(f"--- {path.name}\n" + "\n".join(
                    path.read_text(errors="replace").splitlines()[-lines:]))  # fmt: skip
        return "\n".join(texts)

    def _open_log(self, path: Path, append: bool = False) -> Any:
        log = path.open("ab" if append else "wb")
        self._logs.append(log)
        return log


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


@contextlib.contextmanager
def web_cluster() -> Iterator[WebCluster]:
    with WebCluster() as cluster:
        yield cluster
