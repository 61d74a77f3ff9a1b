"""skiff deployments for benchmarks: one `skiff serve` node, or an embedded Valkey with a leader,
N followers and optionally the proxy, all on 127.0.0.1. Each yields `Endpoint`s that carry the
pids whose CPU and memory the benchmarks read."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.endpoints import Endpoint
from bench.procs import skiff, wait_ready
from skiff.dev.embedded_redis import EmbeddedRedis, free_port


@contextlib.contextmanager
def serve(service: str, keys: int = 0) -> Iterator[Endpoint]:
    """`skiff serve SERVICE` on one port (SKIFF_BENCH_KEYS=keys for bench.workloads)."""
    port = free_port()
    with skiff(
        "serve",
        service,
        "--port",
        str(port),
        env={"SKIFF_BENCH_KEYS": str(keys)},
        ready_url=f"http://127.0.0.1:{port}",
    ) as proc:
        yield Endpoint.single("skiff", port, {"node": proc.pid})


def proxy_available() -> str | None:
    """Why the proxy path cannot be benchmarked, or None when `skiff proxy` exists."""
    exe = str(Path(sys.executable).parent / "skiff")
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30).stdout
    except OSError as err:
        return str(err)
    return None if " proxy" in out else "`skiff proxy` is not available yet"


@dataclass
class Cluster:
    redis_url: str
    redis_pid: int
    leader: Endpoint
    followers: list[Endpoint] = field(default_factory=list)
    proxies: list[Endpoint] = field(default_factory=list)

    @property
    def proxy(self) -> Endpoint | None:
        return self.proxies[0] if self.proxies else None

    @property
    def pids(self) -> dict[str, int]:
        out = {"redis": self.redis_pid, "leader": self.leader.pids["node"]}
        for i, follower in enumerate(self.followers):
            out[f"follower{i + 1}"] = follower.pids["node"]
        for i, proxy in enumerate(self.proxies):
            out["proxy" if i == 0 else f"proxy{i + 1}"] = proxy.pids["node"]
        return out


@contextlib.asynccontextmanager
async def cluster(
    service: str,
    service_name: str,
    keys: int,
    followers: int = 1,
    proxy: bool = False,
    proxies: int | None = None,
    leader_args: tuple[str, ...] = ("--snapshot-every", "100000000"),
) -> AsyncIterator[Cluster]:
    """Valkey + `skiff leader` + `followers` x `skiff follower` (+ `proxies` x `skiff proxy`;
    `proxy=True` is one)."""
    async with EmbeddedRedis() as server:
        assert server.pid is not None
        with contextlib.ExitStack() as stack:
            lport = free_port()
            leader = stack.enter_context(
                skiff(
                    "leader", service, "--redis", server.url, "--port", str(lport),
                    "--node-id", "bench-leader", *leader_args,
                    env={"SKIFF_BENCH_KEYS": str(keys)},
                )
            )  # fmt: skip
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{lport}", 600)
            built = Cluster(
                server.url, server.pid, Endpoint.single("skiff", lport, {"node": leader.pid})
            )
            for i in range(followers):
                fport = free_port()
                proc = stack.enter_context(
                    skiff(
                        "follower", service, "--redis", server.url, "--port", str(fport),
                        "--node-id", f"bench-follower-{i + 1}",
                        env={"SKIFF_BENCH_KEYS": "0"},
                    )
                )  # fmt: skip
                built.followers.append(Endpoint.single("skiff", fport, {"node": proc.pid}))
            for follower in built.followers:
                url = f"http://127.0.0.1:{follower.control_port}"
                await asyncio.to_thread(wait_ready, url, 600)
            for _ in range(proxies if proxies is not None else int(proxy)):
                pport = free_port()
                proc = stack.enter_context(
                    skiff(
                        "proxy", "--redis", server.url, "--port", str(pport),
                        "--service", service_name,
                    )
                )  # fmt: skip
                await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{pport}", 60)
                built.proxies.append(Endpoint.single("skiff", pport, {"node": proc.pid}))
            yield built
