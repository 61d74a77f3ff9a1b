"""`skiff dev`: the whole cluster as real processes behind one URL, stopped in order by Ctrl-C."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from broker.errors import BrokerError
from skiff.dev.cluster import DevCluster, DevOptions
from skiff.dev.embedded_redis import free_port

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_dev_runs_a_cluster_behind_one_url_and_stops_it() -> None:
    port, control_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skiff", "dev", "tests.support.cluster_services:service",
         "--followers", "1", "--port", str(port), "--control-port", str(control_port),
         "--log-level", "info"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "ready: open" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "\n".join(lines[-40:])
        url = f"http://127.0.0.1:{port}"
        assert any(f"ready: open {url} " in line for line in lines)
        with httpx.Client(base_url=url, timeout=10) as http:
            health = http.get("/healthz").json()
            assert health["leader"] == "leader" and health["serving"] == 2
            version = http.patch("/v1/inputs/votes", json=[["v1", [{"post": 3}]]]).json()
            assert version == {"version": 1}
            deadline = time.monotonic() + 10
            while http.post("/v1/snapshot/post", json={"post": 3}).json() != [[3, [1]]]:
                assert time.monotonic() < deadline, "the write never reached a follower"
                time.sleep(0.05)
        # Skip's clients: control requests on the second port, the same routes.
        with httpx.Client(base_url=f"http://127.0.0.1:{control_port}", timeout=10) as http:
            assert http.post("/v1/snapshot/post", json={"post": 3}).json() == [[3, [1]]]
        # Every process's lines carry its name.
        for name in ("leader", "follower-1", "proxy"):
            assert any(line.startswith(f"{name:<11}| ") for line in lines), name
        # A normal start says nothing alarming: no server stopping, no "at None".
        starting = lines[: next(i for i, line in enumerate(lines) if "ready: open" in line)]
        for noise in ("Shutting down", "Finished server process", " at None", "is now leader"):
            assert not any(noise in line for line in starting), noise
        # The banner describes this service, and its Redis command runs as written.
        banner = [line.removeprefix("skiff dev  | ") for line in lines if "skiff dev" in line]
        assert "  service cluster: resources top, post; inputs posts, votes" in banner
        skip_line = (
            f'  Skip clients: SkipServiceBroker({{host: "127.0.0.1", streaming_port: {port}, '
            f"control_port: {control_port}}})"
        )
        assert skip_line in banner
        assert not any("/v1/snapshot/posts" in line for line in banner)
        command = next(line for line in banner if " redis-cli --redis " in line)
        xlen = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=20)
        assert xlen.stdout.strip() == "1", xlen
        tmp = re.search(r"files in (\S+)", "\n".join(lines))
        assert tmp is not None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        reader.join(5)
        # Stopped in order: proxy, follower, leader; then its files are gone.
        stops = [line.split("|")[0].strip() for line in lines if "Finished server process" in line]
        assert stops[-3:] == ["proxy", "follower-1", "leader"], stops
        assert lines[-1] == "skiff dev  | stopped"
        assert not Path(tmp.group(1)).exists()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz", timeout=1)
    finally:
        if process.poll() is None:
            # Ctrl-C first: `skiff dev` stops its children; a SIGKILL would orphan them.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class _OtherCluster(http.server.BaseHTTPRequestHandler):
    """Another cluster's proxy: ready, with nodes of its own."""

    def do_GET(self) -> None:
        bodies = {
            "/healthz": {
                "status": "ok",
                "role": "proxy",
                "nodes": 3,
                "serving": 3,
                "leader": "leader",
            },
            "/v1/admin/nodes": {
                "leader": "leader",
                "nodes": [{"node_id": "leader", "role": "leader", "url": "http://127.0.0.1:1"}],
            },
        }
        body = json.dumps(bodies.get(self.path, {})).encode()
        self.send_response(200 if self.path in bodies else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_a_cluster_already_on_the_port_is_not_taken_for_ours() -> None:
    # The port is taken after `skiff dev` checked it (or by a server its check cannot see):
    # the other proxy answers /healthz, ready, but lists other nodes; ours cannot bind and exits.
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherCluster)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    out = io.StringIO()
    options = DevOptions(
        service="tests.support.cluster_services:service", service_name="cluster", followers=0,
        port=other.server_address[1], start_timeout_s=30,
    )  # fmt: skip
    cluster = DevCluster(options, out=out)
    try:
        with pytest.raises(BrokerError, match="proxy exited during startup"):
            await asyncio.wait_for(cluster.start(), 40)
    finally:
        await cluster.stop()
        other.shutdown()
        other.server_close()
    assert "Address already in use" in out.getvalue()
