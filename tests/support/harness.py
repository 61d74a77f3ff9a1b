"""Real skiff processes on 127.0.0.1 for the cluster tests, always cleaned up.

    async with Cluster(redis_url, tmp_path) as cluster:
        leader = await cluster.leader("L1")
        follower = await cluster.follower("F1")
        ...

Each process logs to a file in the test's temp dir; when a test fails, the tails of those logs
are printed so the failure can be understood from CI output alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from skiff.dev.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
SKIFF = str(Path(sys.executable).parent / "skiff")
SERVICE = "tests.support.cluster_services:service"


@dataclass
class Proc:
    name: str
    kind: str
    args: list[str]
    url: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    def __init__(
        self,
        redis_url: str,
        tmp: Path,
        *,
        service: str = SERVICE,
        env: dict[str, str] | None = None,
        command: tuple[str, ...] = (SKIFF,),
    ) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        self.service = service
        self.env = env or {}
        #: What runs `skiff ARGS`: the venv's script, or a launcher (bench/limits_off.py).
        self.command = command
        self.procs: dict[str, Proc] = {}
        self.http = httpx.AsyncClient(timeout=10.0)

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(show_logs=exc is not None)

    # -- starting -----------------------------------------------------------------------------
    def _start(self, proc: Proc) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, **proc.env}
        with proc.log.open("ab") as log:
            proc.popen = subprocess.Popen(
                [*self.command, *proc.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _node(
        self, kind: str, name: str, extra: list[str], env: dict[str, str] | None, port: int | None
    ) -> Proc:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        args = [
            kind,
            self.service,
            "--redis",
            self.redis_url,
            "--node-id",
            name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--advertise-url",
            url,
            "--log-level",
            "info",
            *extra,
        ]
        proc = Proc(name, kind, args, url, self.tmp / f"{name}.log", env=env or {})
        self.procs[name] = proc
        self._start(proc)
        return proc

    async def leader(
        self,
        name: str,
        *extra: str,
        ready: bool = True,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Proc:
        return await self._started("leader", name, extra, ready, env, port)

    async def follower(
        self,
        name: str,
        *extra: str,
        ready: bool = True,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Proc:
        return await self._started("follower", name, extra, ready, env, port)

    async def _started(
        self,
        kind: str,
        name: str,
        extra: tuple[str, ...],
        ready: bool,
        env: dict[str, str] | None,
        port: int | None,
    ) -> Proc:
        proc = self._node(kind, name, list(extra), env, port)
        if ready:
            await self.wait_ready(proc)
        return proc

    async def proxy(
        self,
        name: str = "proxy",
        *extra: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Proc:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        args = [
            "proxy",
            "--redis",
            self.redis_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *extra,
        ]
        proc = Proc(name, "proxy", args, url, self.tmp / f"{name}.log", env=env or {})
        self.procs[name] = proc
        self._start(proc)
        await self.wait_ready(proc)
        return proc

    async def restart(self, name: str, ready: bool = True) -> Proc:
        proc = self.procs[name]
        if proc.alive():
            raise RuntimeError(f"{name} is still running")
        self._start(proc)
        if ready:
            await self.wait_ready(proc)
        return proc

    # -- observing ----------------------------------------------------------------------------
    async def wait_ready(self, proc: Proc, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            try:
                if (await self.http.get(proc.url + "/healthz", timeout=1.0)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{proc.name} not ready after {within}s:\n{proc.tail()}")

    async def state(self, proc: Proc) -> dict[str, Any]:
        response = await self.http.get(proc.url + "/v1/admin/state")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def converged(self, procs: list[Proc], within: float = 30.0) -> dict[str, Any]:
        """Wait until every process reports the same epoch, version and checksums."""
        deadline = time.monotonic() + within
        last: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                last = [await self.state(p) for p in procs]
            except httpx.HTTPError:
                await asyncio.sleep(0.2)
                continue
            keys = {(s["epoch"], s["version"], tuple(sorted(s["checksums"].items()))) for s in last}
            if len(keys) == 1:
                return last[0]
            await asyncio.sleep(0.2)
        raise AssertionError(f"no convergence after {within}s: {last}")

    # -- faults -------------------------------------------------------------------------------
    def signal(self, name: str, sig: signal.Signals) -> None:
        os.kill(self.procs[name].pid, sig)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.alive():
            assert proc.popen is not None
            proc.popen.kill()
            proc.popen.wait(timeout=10)

    async def terminate(self, name: str, within: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        proc = self.procs[name]
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        while proc.popen.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not exit after SIGTERM:\n{proc.tail()}")
            await asyncio.sleep(0.05)
        return proc.popen.returncode

    async def close(self, show_logs: bool = False) -> None:
        for proc in self.procs.values():
            if proc.alive():
                assert proc.popen is not None
                # SIGCONT first: a stopped process cannot act on SIGTERM.
                with_suppressed(os.killpg, proc.popen.pid, signal.SIGCONT)
                proc.popen.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            if proc.popen is None:
                continue
            while proc.popen.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if proc.popen.poll() is None:
                with_suppressed(os.killpg, proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        await self.http.aclose()
        if show_logs:
            for proc in self.procs.values():
                print(f"\n----- {proc.name} ({proc.kind}) log tail -----\n{proc.tail()}")


@contextlib.asynccontextmanager
async def closing_cluster(redis_url: str, tmp_path: Path, request: Any) -> AsyncIterator[Cluster]:
    """A test's Cluster, closed at its end with every process's log shown when the test failed
    (or stopped before reporting: a timeout). `request` is pytest's FixtureRequest."""
    cluster = Cluster(redis_url, tmp_path)
    try:
        yield cluster
    finally:
        failed = getattr(request.node, "rep_call", None)
        await cluster.close(show_logs=failed is None or failed.failed)


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the test process dies, so a killed pytest run
    (a CI timeout, a Ctrl-C) never leaves skiff processes behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def with_suppressed(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (ProcessLookupError, PermissionError):
        pass


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)
