"""DevCluster: a whole skiff cluster on one machine, for `skiff dev` (and `make dev`).

An embedded Valkey (or an existing server), a leader, N followers and the proxy, each a real
`skiff` subprocess in its own session (a terminal's Ctrl-C reaches only `skiff dev`, which then
stops the others in order). Every line a process writes is printed prefixed with its name.

Stopping, in order: the proxy (clients stop arriving), the followers, the leader, then Redis;
each gets SIGINT (an immediate, orderly shutdown) and SIGKILL if it has not exited within
`stop_timeout_s`. The temporary directory (Redis' files) is removed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from broker.errors import BrokerError
from broker.runtime.tasks import Supervisor, stop_all
from skiff.dev.embedded_redis import EmbeddedRedis, free_port

_COLORS = ("36", "33", "32", "35", "34", "31")


@dataclass(frozen=True, slots=True)
class DevOptions:
    service: str  # MODULE:SERVICE
    service_name: str  # its keyspace name, for the proxy
    followers: int = 2
    host: str = "127.0.0.1"
    port: int = 8080
    #: The proxy's second port (the same routes), for Skip's clients; None: none.
    control_port: int | None = None
    redis_url: str | None = None
    log_level: str = "info"
    access_log: bool = False
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    #: Added to every process's environment (the demo's identity-token key, say).
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


class Child:
    """One `skiff` subprocess whose output is relayed line by line under its name."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        out: TextIO,
        color: str | None,
        tasks: Supervisor,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._env = dict(env or {})
        self._tasks = tasks
        self.args = list(args)
        self._out = out
        self._prefix = f"{name:<11}| "
        if color is not None:
            self._prefix = f"\x1b[{color}m{self._prefix}\x1b[0m"
        self.process: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def exited(self) -> bool:
        return self.process is None or self.process.returncode is not None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "skiff", *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self._env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )  # fmt: skip
        self._pump = self._tasks.spawn(self._relay(), name=f"dev output {self.name}")

    async def _relay(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self._out.write(self._prefix + line.decode(errors="replace").rstrip("\n") + "\n")
            self._out.flush()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout_s: float) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._pump is not None:
            # The pipe closes with the process; let the last lines through.
            await asyncio.wait({self._pump}, timeout=2)
        return process.returncode


class DevCluster:
    def __init__(self, options: DevOptions, out: TextIO | None = None) -> None:
        self.options = options
        self._out = out or sys.stdout
        self._tty = self._out.isatty()
        self._tmp: Path | None = None
        self._redis: EmbeddedRedis | None = None
        self.redis_url = options.redis_url or ""
        self.children: list[Child] = []
        #: The port each node was told to listen on, by node id.
        self._node_ports: dict[str, int] = {}
        #: Owns the relays of the children's output.
        self.tasks = Supervisor("skiff dev")

    @property
    def url(self) -> str:
        """The one URL to open: the proxy's."""
        return f"http://{self.options.host}:{self.options.port}"

    def say(self, text: str) -> None:
        self._out.write(f"skiff dev  | {text}\n")
        self._out.flush()

    async def start(self) -> None:
        """Start everything and wait until the proxy serves; BrokerError when it cannot."""
        opts = self.options
        self._tmp = Path(tempfile.mkdtemp(prefix="skiff-dev-"))
        if not opts.redis_url:
            self._redis = EmbeddedRedis(directory=self._tmp / "redis")
            (self._tmp / "redis").mkdir()
            await self._redis.start()
            self.redis_url = self._redis.url
            self.say(f"embedded Valkey on {self.redis_url}, files in {self._tmp}")
        common = ["--redis", self.redis_url, "--host", opts.host, "--log-level", opts.log_level]
        if opts.access_log:
            common.append("--access-log")
        nodes = [("leader", "leader")] + [
            ("follower", f"follower-{i}") for i in range(1, opts.followers + 1)
        ]
        for kind, name in nodes:
            self._node_ports[name] = port = free_port()
            args = [kind, opts.service, "--node-id", name, "--port", str(port), *common]
            await self._spawn(name, args)
        proxy = ["proxy", "--service", opts.service_name, "--port", str(opts.port), *common]
        if opts.control_port is not None:
            proxy += ["--control-port", str(opts.control_port)]
        await self._spawn("proxy", proxy)
        await self._until_serving()

    async def _spawn(self, name: str, args: list[str]) -> None:
        color = _COLORS[len(self.children) % len(_COLORS)] if self._tty else None
        child = Child(name, args, self._out, color, self.tasks, self.options.env)
        self.children.append(child)
        await child.start()

    async def _until_serving(self) -> None:
        opts = self.options
        deadline = asyncio.get_running_loop().time() + opts.start_timeout_s
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as http:
            while True:
                for child in self.children:
                    if child.exited:
                        raise BrokerError(f"{child.name} exited during startup")
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    response = await http.get(self.url + "/healthz")
                    body = response.json()
                    if (
                        response.status_code == 200
                        and body.get("leader")
                        and (body.get("serving", 0) >= opts.followers + 1)
                        and await self._ours(http)
                    ):
                        return
                if asyncio.get_running_loop().time() > deadline:
                    raise BrokerError(f"the cluster was not ready after {opts.start_timeout_s} s")
                await asyncio.sleep(0.2)

    async def _ours(self, http: httpx.AsyncClient) -> bool:
        """Whether the proxy answering on our port is ours, not another cluster's that took
        the port first: its membership must list our nodes at the ports we gave them."""
        token = os.environ.get("SKIFF_CONTROL_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await http.get(self.url + "/v1/admin/nodes", headers=headers)
        if response.status_code != 200:
            return False
        listed = {
            node["node_id"]: urlsplit(node["url"] or "").port for node in response.json()["nodes"]
        }
        return all(listed.get(name) == port for name, port in self._node_ports.items())

    async def wait_for_exit(self) -> Child:
        """The first child to exit (normally never: `skiff dev` is stopped with Ctrl-C)."""
        waits = {
            self.tasks.spawn(c.wait(), name=f"wait {c.name}", report=False): c
            for c in self.children
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop_all(*waits)
        return waits[next(iter(done))]

    async def stop(self) -> None:
        """Proxy, followers, leader, Redis, temp files: in that order, each waited for."""
        for child in reversed(self.children):  # started leader-first, proxy-last
            code = await child.stop(self.options.stop_timeout_s)
            if code not in (None, 0, -signal.SIGINT):
                self.say(f"{child.name} exited with status {code}")
        await self.tasks.aclose()
        if self._redis is not None:
            await self._redis.close()
        if self._tmp is not None:
            await asyncio.to_thread(shutil.rmtree, self._tmp, True)
            self._tmp = None
