"""Skip's own client, unchanged, against skiff: `SkipServiceBroker` from @skipruntime/helpers
0.0.15 on Node.js (every control call: update, getAll, getArray, getUnique, getStreamUUID,
deleteKey, deleteUUID) and the stream read on the streaming port, against a single node whose
routes are split as Skip's are, and against a cluster's proxy with its control port. Skipped,
with the reason, when Node.js or Skip's packages are not here (`make skip-runtime`)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench import skip_runtime
from broker import ServeConfig, running
from broker.store.keyspace import Keyspace
from skiff.dev.embedded_redis import free_port
from tests.support.harness import Cluster
from tests.support.services import make_service

pytestmark = pytest.mark.timeout(120)

SCRIPT = Path(__file__).with_name("skip_client.mjs")


def helpers_index() -> Path:
    reason = skip_runtime.unavailable_reason()
    if reason:
        pytest.skip(f"Skip's runtime is not here: {reason}")
    index = skip_runtime.scratch_dir() / "node_modules/@skipruntime/helpers/dist/src/index.js"
    if not index.exists():
        pytest.skip(f"no {index}")
    return index


async def skip_client(streaming_url: str, control_url: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    streaming, control = urlsplit(streaming_url), urlsplit(control_url)
    process = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), str(helpers_index()), streaming.hostname or "",
        str(streaming.port), str(control.port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def check(result: dict[str, Any]) -> None:
    before = [[1, [1]], [2, [1]]]
    assert result["all"] == [*before, [3, [1]]]
    assert result["array"] == [1] and result["unique"] == 1
    assert result["status"] == 200
    assert result["first"] == {"event": "init", "data": [*before, [3, [1]]]}
    assert result["second"] == {"event": "update", "data": [[3, []]]}
    assert result["after"] == before


async def test_skips_client_against_a_node_split_as_skip() -> None:
    helpers_index()
    config = ServeConfig(port=0, control_port=0, shutdown_timeout_s=1)
    async with running(make_service(), config) as node:
        assert node.url != node.control_url
        check(await skip_client(node.url, node.control_url))


async def test_skips_client_against_a_clusters_proxy(
    redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    helpers_index()
    env = {"SKIFF_TEST_SERVICE_NAME": keyspace.service}
    service = "tests.support.named_service:service"
    async with Cluster(redis_url, tmp_path, service=service, env=env) as cluster:
        await cluster.leader("leader")
        await cluster.follower("follower")
        control_port = free_port()
        proxy = await cluster.proxy(
            "proxy", "--service", keyspace.service, "--control-port", str(control_port)
        )
        check(await skip_client(proxy.url, f"http://127.0.0.1:{control_port}"))
