"""One podman-compose project of docker/compose.yml, driven from a test and always removed.

    async with ComposeProject(env={...}) as project:
        await project.up(followers=2)
        name = (await project.containers("follower"))[0]
        await project.podman("network", "disconnect", project.network, name)

Containers are named `<project>_<service>_<n>` by podman-compose and labelled with the project,
so everything the project made (containers, its network, its volume) is found and removed on
the way out, whether the test passed or not. When it failed, every container's log is saved
under test-artifacts/ and the tails are printed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "compose.yml"
ARTIFACTS = ROOT / "test-artifacts"


class CommandError(Exception):
    def __init__(self, argv: list[str], code: int, output: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {code}:\n{output[-4000:]}")
        self.code = code
        self.output = output


def podman_compose_command() -> list[str] | None:
    """How to run podman-compose: from this venv (the `containers` extra), else from PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("podman-compose")
    return [found] if found else None


async def run(
    *argv: str, env: dict[str, str] | None = None, limit_s: float = 120.0, merged: bool = False
) -> str:
    """Run a command; its standard output (with stderr when `merged`), or CommandError when it
    fails. Podman's complaints about missing systemd go to stderr: they never reach a parser."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(limit_s):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise CommandError(list(argv), -1, f"timed out after {limit_s:g} s") from None
    if process.returncode != 0:
        output = (out + (err or b"")).decode(errors="replace")
        raise CommandError(list(argv), process.returncode or -1, output)
    return out.decode(errors="replace")


class ComposeProject:
    def __init__(self, *, env: dict[str, str], name: str | None = None) -> None:
        compose = podman_compose_command()
        if compose is None:
            raise RuntimeError("podman-compose is not installed")
        self.name = name or f"skifftest{secrets.token_hex(3)}"
        self.env = {**os.environ, **env}
        self._compose = [*compose, "-p", self.name, "-f", str(COMPOSE_FILE)]
        self.network = f"{self.name}_default"

    async def __aenter__(self) -> ComposeProject:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None:
                await self.save_logs()
        finally:
            await self.remove()

    # -- commands ----------------------------------------------------------------------------
    async def compose(self, *args: str, limit_s: float = 180.0) -> str:
        return await run(*self._compose, *args, env=self.env, limit_s=limit_s)

    async def podman(self, *args: str, limit_s: float = 120.0, merged: bool = False) -> str:
        return await run("podman", *args, env=self.env, limit_s=limit_s, merged=merged)

    async def up(self, *, followers: int) -> None:
        """Create and start what is missing, with `followers` follower replicas (podman-compose
        creates missing replicas; it never removes extra ones: see `remove_container`)."""
        await self.compose("up", "-d", "--scale", f"follower={followers}")

    async def containers(self, service: str, *, running_only: bool = True) -> list[str]:
        """The service's container names, oldest replica first."""
        out = await self.podman(
            "ps",
            *([] if running_only else ["-a"]),
            "--filter",
            f"label=io.podman.compose.project={self.name}",
            "--filter",
            f"label=io.podman.compose.service={service}",
            "--format",
            "{{.Names}}",
        )
        names = [line.strip() for line in out.splitlines() if line.strip()]
        return sorted(names, key=lambda n: int(n.rsplit("_", 1)[1]))

    async def hostname(self, container: str) -> str:
        out = await self.podman("inspect", "--format", "{{.Config.Hostname}}", container)
        return out.strip()

    async def exit_code(self, container: str) -> int:
        out = await self.podman("inspect", "--format", "{{.State.ExitCode}}", container)
        return int(out.strip())

    async def healthcheck(self, container: str) -> str:
        """Run the container's HEALTHCHECK now ("healthy" or the failure). Podman schedules
        healthchecks with systemd timers, which these machines lack, so the test runs them."""
        try:
            await self.podman("healthcheck", "run", container, limit_s=30)
        except CommandError as err:
            return f"unhealthy ({err.code}): {err.output.strip()[-300:]}"
        return "healthy"

    async def stop_and_remove(self, container: str, *, grace_s: int) -> int:
        """What `docker compose up --scale` does to a surplus replica: SIGTERM, wait up to the
        grace period, remove. Returns the exit code the container stopped with."""
        await self.podman("stop", "-t", str(grace_s), container, limit_s=grace_s + 30)
        code = await self.exit_code(container)
        await self.podman("rm", container)
        return code

    # -- clean-up ------------------------------------------------------------------------------
    async def save_logs(self) -> None:
        directory = ARTIFACTS / f"compose-{self.name}"
        directory.mkdir(parents=True, exist_ok=True)
        try:
            label = f"label=io.podman.compose.project={self.name}"
            out = await self.podman("ps", "-a", "--filter", label, "--format", "{{.Names}}")
        except CommandError:
            return
        for name in out.split():
            try:
                log = await self.podman("logs", name, limit_s=30, merged=True)
            except CommandError as err:
                log = err.output
            (directory / f"{name}.log").write_text(log)
            tail = "\n".join(log.splitlines()[-25:])
            print(f"\n===== {name} (last lines; full log in {directory}) =====\n{tail}")

    async def remove(self) -> None:
        """Remove every container, network and volume of the project, whatever state it is in."""
        label = f"label=io.podman.compose.project={self.name}"
        try:
            await self.compose("down", "-v", "-t", "5", limit_s=240)
        except CommandError as err:
            print(f"podman-compose down failed, removing by label: {err}")
        listings = {
            "container": ("ps", "-a", "-q", "--filter", label),
            "network": ("network", "ls", "-q", "--filter", label),
            "volume": ("volume", "ls", "-q", "--filter", label),
        }
        for kind, listing in listings.items():
            try:
                leftovers = (await self.podman(*listing)).split()
                if leftovers:
                    removal = ("rm",) if kind == "container" else (kind, "rm")
                    await self.podman(*removal, "-f", *leftovers)
            except CommandError as err:
                print(f"could not remove the project's {kind}s: {err}")
