"""docker/compose.yml, docker/Dockerfile and .dockerignore, checked without a container engine:
the topology the issue asks for, and node command lines the real `skiff` CLI accepts. The same
files are brought up for real by tests/deploy/test_compose.py (`make test-containers`)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.cli import build_parser

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
NODES = ("leader-a", "leader-b", "follower")
SKIFF_SERVICES = (*NODES, "proxy", "url")
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\})")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation for the forms the file uses: ${VAR}, ${VAR:-default}, $$."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            return env.get(match["name"]) or (match["default"] or "")

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, Any]:
    return dict(interpolate(raw["services"], {}))


def test_topology(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", *SKIFF_SERVICES}
    assert services["leader-a"]["command"][0] == "leader"
    assert services["leader-b"]["command"][0] == "leader"
    assert services["follower"]["command"][0] == "follower"
    assert services["proxy"]["command"][0] == "proxy"
    # Two distinct candidates, named after their service.
    assert services["leader-a"]["hostname"] != services["leader-b"]["hostname"]


def test_images_default_to_official_and_built_ones_and_are_overridable(
    raw: dict[str, Any],
) -> None:
    redis = raw["services"]["redis"]["image"]
    assert redis == "${SKIFF_REDIS_IMAGE:-redis:7.4}"
    assert interpolate(redis, {"SKIFF_REDIS_IMAGE": "localhost/v:8"}) == "localhost/v:8"
    for name in SKIFF_SERVICES:
        service = raw["services"][name]
        assert service["image"] == "${SKIFF_IMAGE:-skiff:latest}", name
        # `up --build` builds every skiff service from the repository.
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert (COMPOSE.parent / service["build"]["context"] / "docker/Dockerfile").exists()


def test_redis_persists_with_aof_everysec(raw: dict[str, Any], services: dict[str, Any]) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    volume, path = redis["volumes"][0].split(":")
    assert path == "/data" and volume in raw["volumes"]


def test_healthchecks_and_dependencies(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name == "url":
            continue  # a one-shot that prints the URL
        check = service["healthcheck"]["test"]
        assert check[0] == "CMD", name
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    # Ready means /healthz; candidates report liveness, since a standby is never ready.
    assert "/healthz" in services["follower"]["healthcheck"]["test"][-1]
    assert "/healthz" in services["proxy"]["healthcheck"]["test"][-1]
    for name in ("leader-a", "leader-b"):
        assert "/metrics" in services[name]["healthcheck"]["test"][-1]
    for name in (*NODES, "proxy"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
        assert services[name]["restart"] == "unless-stopped"
    assert services["url"]["depends_on"]["proxy"] == {"condition": "service_healthy"}


def test_followers_scale_and_only_the_proxy_is_published(services: dict[str, Any]) -> None:
    follower = services["follower"]
    assert follower["deploy"] == {"mode": "replicated", "replicas": "2"}
    # Anything fixed per container would collide between replicas.
    assert not {"container_name", "hostname", "ports"} & follower.keys()
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"proxy"}
    # The second port serves the same routes, for Skip's clients.
    assert services["proxy"]["ports"] == ["8080:8080", "8081:8081"]
    assert services["proxy"]["command"][-2:] == ["--control-port", "8081"]
    assert interpolate(["${SKIFF_PORT:-8080}:8080"], {"SKIFF_PORT": "9000"}) == ["9000:8080"]


def test_nodes_outlast_their_drain_window(services: dict[str, Any]) -> None:
    drain_window = 10  # skiff's default --drain-window
    for name in NODES:
        grace = services[name]["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) >= 2 * drain_window, name


def test_every_skiff_service_reaches_redis_by_its_service_name(services: dict[str, Any]) -> None:
    for name in (*NODES, "proxy"):
        environment = services[name]["environment"]
        assert environment["SKIFF_REDIS_URL"] == "redis://redis:6379/0", name
        assert environment["SKIFF_CONTROL_TOKEN"] == "", name  # empty = no token


def _fake_bin(tmp_path: Path, hostname: str) -> Path:
    """`skiff` writing its arguments one per line to $ARGS_OUT, and a fixed `hostname`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "skiff": '#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$ARGS_OUT"\n',
        "hostname": f"#!/bin/sh\necho {hostname}\n",
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return bin_dir


@pytest.mark.parametrize("name", NODES)
def test_node_entrypoint_runs_skiff_advertising_its_hostname(
    services: dict[str, Any], tmp_path: Path, name: str
) -> None:
    service = services[name]
    out = tmp_path / "args"
    env = {"PATH": f"{_fake_bin(tmp_path, 'c0ffee123456')}:{os.environ['PATH']}"}
    env["ARGS_OUT"] = str(out)
    entrypoint = [*service["entrypoint"]]
    entrypoint[0] = "sh"  # the image's /bin/sh; here, whatever sh is on PATH
    subprocess.run([*entrypoint, *service["command"]], env=env, check=True, timeout=10)
    args = build_parser().parse_args(out.read_text().splitlines())
    assert args.command == service["command"][0]
    assert args.service == "examples.hackernews:service"
    assert (args.host, args.port) == ("0.0.0.0", 8080)
    assert args.advertise_url == "http://c0ffee123456:8080"


def test_proxy_command_is_accepted_by_skiff(services: dict[str, Any]) -> None:
    args = build_parser().parse_args(services["proxy"]["command"])
    assert (args.command, args.host, args.port) == ("proxy", "0.0.0.0", 8080)


# -- the image --------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(p[0].upper(), p[1] if len(p) > 1 else "") for p in pairs]


def test_dockerfile_is_multi_stage_on_an_overridable_slim_python() -> None:
    instructions = _instructions()
    assert instructions[0][0] == "ARG"
    name, default = instructions[0][1].split("=", 1)
    assert name == "BASE_IMAGE" and re.fullmatch(r"python:3\.\d+-slim(-\w+)?", default)
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]


def test_final_stage_is_non_root_without_build_tools_with_healthcheck() -> None:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    final = instructions[last_from:]
    runs = " ".join(arg for op, arg in final if op == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", runs)
    copies = [arg for op, arg in final if op == "COPY"]
    assert "--from=build /opt/skiff /opt/skiff" in copies
    (user,) = [arg for op, arg in final if op == "USER"]
    assert int(user.split(":")[0]) > 0
    (health,) = [arg for op, arg in final if op == "HEALTHCHECK"]
    assert "/healthz" in health
    assert ("ENTRYPOINT", '["skiff"]') in final


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert kept == {"pyproject.toml", "README.md", "graph", "broker", "proxy", "skiff", "examples"}
