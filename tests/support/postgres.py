"""A private PostgreSQL server for the tests: Debian's `postgresql` package, run from its binaries.

The binaries are found in `SKIFF_TEST_PG_BINDIR`, else the newest `/usr/lib/postgresql/<ver>/bin`
(Debian's layout: they are not on PATH), else `initdb` on PATH. The server keeps its cluster in a
fresh temporary directory, listens on 127.0.0.1 on a free port with trust authentication, writes
nothing durably (fsync off: a test server), and is removed entirely by `close()`.

PostgreSQL refuses to run as root. When the tests run as root, every server command runs as
the `postgres` system user (created by the package) through `runuser`, and the directory is
handed to that user; otherwise they run as the current user.

    server = PostgresServer()
    await server.start()
    ...  # server.dsn("postgres"); await server.restart()
    await server.close()
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from skiff.dev.embedded_redis import free_port

SUPERUSER = "postgres"
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_RUN_AS_WHEN_ROOT = "postgres"
_PORT_ATTEMPTS = 3
_COMMAND_TIMEOUT_S = 60.0


class PostgresUnavailable(Exception):
    """No server can be started here; the message says why (it becomes the skip reason)."""


class PostgresServerError(Exception):
    """A server command failed (an installed PostgreSQL that does not work: a test failure)."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    override = os.environ.get("SKIFF_TEST_PG_BINDIR")
    if override:
        if not (Path(override) / "initdb").exists():
            raise PostgresUnavailable(f"SKIFF_TEST_PG_BINDIR={override} holds no initdb")
        return Path(override)
    versions = sorted(
        (path for path in _DEBIAN_ROOT.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: _version_key(path.parent.name),
    )
    if versions:
        return versions[-1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed (no /usr/lib/postgresql/<ver>/bin/initdb, no initdb on "
        "PATH): apt-get install postgresql, or set SKIFF_TEST_PG_BINDIR"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _run_as_prefix() -> tuple[list[str], str | None]:
    """The command prefix that runs the server as a non-root user, and that user's name."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam(_RUN_AS_WHEN_ROOT)
    except KeyError as err:
        raise PostgresUnavailable(
            f"running as root and there is no {_RUN_AS_WHEN_ROOT!r} user to run PostgreSQL as"
        ) from err
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root and runuser is not installed")
    return [runuser, "-u", _RUN_AS_WHEN_ROOT, "--"], _RUN_AS_WHEN_ROOT


class PostgresServer:
    """One throwaway cluster: `start()`, `stop()`, `restart()`, `close()` (stop and delete)."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self._prefix, self._user = _run_as_prefix()
        self.port = 0
        self._root: Path | None = None

    @property
    def data(self) -> Path:
        if self._root is None:
            raise RuntimeError("the server was not started")
        return self._root / "data"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    async def start(self) -> None:
        if self._root is None:
            await self._initdb()
        for attempt in range(_PORT_ATTEMPTS):
            self.port = self.port or free_port()
            try:
                await self._pg_ctl("start", "-o", self._options())
                return
            except PostgresServerError:
                # Most likely another process took the port between free_port() and the bind.
                if attempt == _PORT_ATTEMPTS - 1:
                    raise
                self.port = 0

    async def stop(self, mode: str = "fast") -> None:
        await self._pg_ctl("stop", "-m", mode)

    async def restart(self, mode: str = "fast") -> None:
        """Stop (terminating every session, as `pg_ctl restart` does) and start on the same
        port and directory."""
        await self._pg_ctl("restart", "-m", mode, "-o", self._options())

    async def close(self) -> None:
        if self._root is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                await self._pg_ctl("stop", "-m", "immediate")
            except PostgresServerError:
                pass  # already gone: the directory is removed below all the same
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None

    def log(self) -> str:
        path = (self._root or Path("/nonexistent")) / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _options(self) -> str:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self._root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Timestamps print in the session's time zone: fixed, so tests can spell them.
            "timezone": "UTC",
        }
        return " ".join(f"-c {name}={value}" for name, value in settings.items())

    async def _initdb(self) -> None:
        # mkdtemp's directory is private (0700) under the world-traversable /tmp, so handing it
        # to the server's user is enough (pytest's tmp_path sits under a root-only directory).
        self._root = Path(tempfile.mkdtemp(prefix="skiff-pg-"))
        if self._user is not None:
            shutil.chown(self._root, user=self._user, group=self._user)
        await self._command(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    async def _pg_ctl(self, *args: str) -> None:
        log = str((self._root or Path()) / "server.log")
        await self._command("pg_ctl", "-D", str(self.data), "-l", log, "-w", *args)

    async def _command(self, program: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._prefix,
            str(self.bindir / program),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(_COMMAND_TIMEOUT_S):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise PostgresServerError(f"{program} {' '.join(args)} timed out") from None
        if process.returncode != 0:
            raise PostgresServerError(
                f"{program} {' '.join(args)} failed ({process.returncode}): "
                f"{output.decode(errors='replace')}\n{self.log()[-2000:]}"
            )
