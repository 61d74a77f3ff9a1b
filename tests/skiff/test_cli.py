"""`skiff serve`: argument parsing, service loading, and a real process stopped by a signal."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker import ServeConfig, ServiceLoadError, load_service
from graph import Service
from skiff.cli import build_parser, main
from skiff.commands.leader import leader_config_from
from skiff.commands.options import cluster_serve_config, serve_config
from skiff.dev.embedded_redis import free_port

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def test_serve_arguments() -> None:
    args = build_parser().parse_args(
        ["serve", "pkg.mod:svc", "--port", "9000", "--control-port", "9001", "--heartbeat", "5"]
    )
    assert (args.command, args.service, args.port, args.control_port) == (
        "serve",
        "pkg.mod:svc",
        9000,
        9001,
    )
    assert args.heartbeat_s == 5.0
    # Omitted options stay None so ServeConfig's own defaults apply.
    assert args.host is None and args.idle_instance_s is None


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "no-colon"], "expected MODULE:ATTRIBUTE"),
        (["serve", "tests.support.services:service", "--port", "70000"], "port must be"),
        (["serve", "tests.support.services:service", "--max-pending", "0"], "max_pending_updates"),
        (["serve", "tests.broker.nothing_here:service"], "cannot import"),
        (
            [
                "leader",
                "tests.support.services:service",
                "--redis",
                "redis://127.0.0.1:1/0",
                "--data-loss-wait",
                "0.5",
            ],
            "data loss wait must be at least the fresh start grace (1.5 s), got 0.5",
        ),
    ],
)
def test_clean_failures(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_leader_options_reach_the_leader_config() -> None:
    args = build_parser().parse_args(
        ["leader", "pkg.mod:svc", "--node-id", "L9", "--lease-ttl", "2", "--data-loss-wait", "20"]
    )
    config = leader_config_from(args)
    assert (config.node_id, config.lease_ttl_s, config.data_loss_wait_s) == ("L9", 2.0, 20.0)
    assert config.history_wait_s == 6.0  # three lease TTLs
    default = leader_config_from(build_parser().parse_args(["leader", "pkg.mod:svc"]))
    assert (default.data_loss_wait_s, default.history_wait_s) == (60.0, 9.0)
    chosen = build_parser().parse_args(["leader", "pkg.mod:svc", "--lost-history-wait", "30"])
    assert leader_config_from(chosen).history_wait_s == 30.0


def test_load_service_variants() -> None:
    assert isinstance(load_service("tests.support.services:service"), Service)
    # A factory is called.
    assert isinstance(load_service("tests.support.services:make_service"), Service)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (":service", "expected MODULE:ATTRIBUTE"),
        ("tests.support.services:", "expected MODULE:ATTRIBUTE"),
        ("tests.support.services:missing", "no attribute"),
        ("tests.support.services:RUN_NOTHING.x", "no attribute"),
        ("tests.support.services:Top", "raised"),
        ("tests.support.services:__doc__", "not a graph.Service"),
    ],
)
def test_load_service_errors(reference: str, message: str) -> None:
    with pytest.raises(ServiceLoadError, match=message):
        load_service(reference)


def test_load_service_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_skiff_service.py").write_text(
        "from tests.support.services import make_service\n"
        "class Holder:\n"
        "    service = make_service()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(ROOT))])
    monkeypatch.delitem(sys.modules, "my_skiff_service", raising=False)
    assert isinstance(load_service("my_skiff_service:Holder.service"), Service)
    assert str(tmp_path) in sys.path


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 0)])
def test_serve_process_until_a_signal(sig: signal.Signals, code: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skiff",
            "serve",
            "tests.support.services:service",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.05)
        with httpx.Client(base_url=url) as http:
            assert http.patch(
                "/v1/inputs/votes", json=[["v3", [{"post": 1, "user": "x"}]]]
            ).json() == {"version": 1}
            stream_id = http.post("/v1/streams/top", json={"limit": 1}).text
            with http.stream(
                "GET", f"/v1/streams/{stream_id}", headers={"Accept": "text/event-stream"}
            ) as response:
                lines = response.iter_lines()
                assert next(lines) == "event: init"
                assert next(lines) == "id: " + http.get("/healthz").json()["run"] + "/1"
                process.send_signal(sig)
                # The stream ends cleanly (a complete chunked body) as the node shuts down.
                rest = list(lines)
            assert rest[0] == "data: [[1,[2]]]"
        assert process.wait(timeout=10) == code
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert "without completing response" not in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_options_and_environment_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}

    async def fake_serve(service: Service, config: ServeConfig, **options: Any) -> None:
        captured.update(service=service, config=config, options=options)

    monkeypatch.setattr("skiff.commands.serve.serve", fake_serve)
    monkeypatch.setenv("SKIFF_CONTROL_TOKEN", "tok")
    argv = [
        "serve",
        "tests.support.services:service",
        "--port",
        "0",
        "--control-port",
        "0",
        "--heartbeat",
        "2.5",
        "--idle-timeout",
        "4",
        "--access-log",
        "--log-level",
        "debug",
    ]
    assert main(argv) == 0
    config = captured["config"]
    assert config == ServeConfig(
        port=0, control_port=0, heartbeat_s=2.5, idle_instance_s=4, control_token="tok"
    )
    assert captured["options"] == {"log_level": "debug", "access_log": True}


def test_cluster_nodes_serve_every_route_on_a_control_port_too() -> None:
    # The proxy and the other nodes know a node by one URL: its routes are not split.
    args = build_parser().parse_args(
        ["leader", "tests.support.services:service", "--port", "9000", "--control-port", "9001"]
    )
    config = cluster_serve_config(args)
    assert (config.port, config.control_port, config.split) == (9000, 9001, False)
    assert serve_config(args).split


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"skiff \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_proxy_help_shows_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "interface to listen on (default 127.0.0.1)" in text
    assert "(default 8080)" in text


def test_serve_prints_its_url() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skiff", "serve", "tests.support.services:service",
         "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "serving" in line:
                assert f" on http://127.0.0.1:{port}" in line
                break
        else:
            raise AssertionError("skiff serve ended without saying where it serves")
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def test_load_service_from_a_file_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "hackernews", raising=False)
    example = ROOT / "examples" / "hackernews.py"
    assert load_service(f"{example}:service").name == "hackernews"
    # Relative to the working directory, and loaded once however it is named.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "hackernews.py").write_text(example.read_text())
    monkeypatch.delitem(sys.modules, "hackernews")
    first = load_service("app/hackernews.py:service")
    assert load_service(f"{tmp_path}/app/hackernews.py:service") is first
    with pytest.raises(ServiceLoadError, match="a module of that name is already imported"):
        load_service(f"{example}:service")
    with pytest.raises(ServiceLoadError, match=r"no file 'nowhere\.py'"):
        load_service("nowhere.py:service")


def test_a_module_not_found_from_here_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(ROOT))])
    with pytest.raises(ServiceLoadError) as info:
        load_service("examples_elsewhere.hackernews:service")
    message = str(info.value)
    assert f"looked up from the working directory, {tmp_path}" in message
    assert ".../examples_elsewhere/hackernews.py:service" in message


def test_proxy_service_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from skiff.commands.proxy import _services

    monkeypatch.delenv("SKIFF_SERVICE", raising=False)
    assert _services(None) == {"service": None}
    assert _services(["a"]) == {"service": "a"}
    assert _services(["a", "b"]) == {"service": None, "services": ("a", "b")}
    monkeypatch.setenv("SKIFF_SERVICE", "x, y")
    assert _services(None) == {"service": None, "services": ("x", "y")}
    args = build_parser().parse_args(["proxy", "--service", "a", "--service", "b"])
    assert args.service == ["a", "b"]
