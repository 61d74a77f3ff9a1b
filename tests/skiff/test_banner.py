"""skiff.dev.banner: what `skiff dev` prints once ready, for the example and for other services."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from skiff.dev.banner import ServiceOutline, ready_banner, skiff_program
from tests.support.cluster_services import service as cluster_service

URL = "http://127.0.0.1:8080"
REDIS = "redis://127.0.0.1:41234/0"


def test_the_example_gets_its_app_and_a_request_it_accepts() -> None:
    outline = ServiceOutline("hackernews", ("posts", "session"), ("posts", "upvotes"))
    assert ready_banner(URL, outline, REDIS, ".venv/bin/skiff") == [
        f"ready: open {URL}   (Ctrl-C stops everything)",
        "  service hackernews: resources posts, session; inputs posts, upvotes",
        f"  the app: {URL}/   cluster status: {URL}/_skiff/",
        f"  read:    curl -X POST {URL}/v1/snapshot/posts -d '{{\"limit\": 3}}'",
        f"  redis:   {REDIS}",
        f"           .venv/bin/skiff redis-cli --redis {REDIS} XLEN 'skiff:{{hackernews}}:deltas'",
    ]


def test_another_service_is_described_as_itself() -> None:
    lines = ready_banner(URL, ServiceOutline.of(cluster_service), REDIS, "skiff")
    text = "\n".join(lines)
    assert "  service cluster: resources top, post; inputs posts, votes" in lines
    assert f"curl -X POST {URL}/v1/snapshot/top -d '{{}}'" in text
    assert f"PATCH {URL}/v1/inputs/<input>" in text
    # Nothing of the example: its app, its posts resource, its params.
    assert "the app" not in text and "/v1/snapshot/posts" not in text and "limit" not in text
    assert f"skiff redis-cli --redis {REDIS} XLEN 'skiff:{{cluster}}:deltas'" in text


def test_a_service_without_resources_or_inputs() -> None:
    lines = ready_banner(URL, ServiceOutline("bare", (), ()), REDIS, "skiff")
    assert "  service bare: resources none; inputs none" in lines
    assert not any("curl" in line or "PATCH" in line for line in lines)


def test_the_printed_redis_command_runs_as_written() -> None:
    line = ready_banner(URL, ServiceOutline("hackernews", (), ()), REDIS, "skiff")[-1]
    assert shlex.split(line) == [
        "skiff", "redis-cli", "--redis", REDIS, "XLEN", "skiff:{hackernews}:deltas",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        (".venv/bin/skiff", ".venv/bin/skiff"),  # `make dev`: as invoked, from where it ran
        ("/opt/my dir/bin/skiff", "'/opt/my dir/bin/skiff'"),
        (str(Path("skiff") / "__main__.py"), f"{shlex.quote(sys.executable)} -m skiff"),
    ],
)
def test_skiff_program(argv0: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert skiff_program(argv0) == expected


def test_skiff_program_is_plain_skiff_when_path_finds_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "skiff"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert skiff_program(str(script)) == "skiff"
